import NIOConcurrencyHelpers
import SCIMKit

/// One holder at a time per key, waited for without holding a thread: the updates of one
/// resource in this agent run one after another, in the order they arrived.
final class ResourceLocks: Sendable {
    private struct Queue {
        var waiting: [CheckedContinuation<Void, Never>] = []
    }
    /// A key is present while it is held; its queue lists who waits for it.
    private let held = NIOLockedValueBox<[String: Queue]>([:])

    func withLock<T: Sendable>(_ key: String, _ body: () async throws(SCIMError) -> T) async throws(SCIMError) -> T {
        await acquire(key)
        defer { release(key) }
        return try await body()
    }

    private func acquire(_ key: String) async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let free = held.withLockedValue { held -> Bool in
                guard held[key] != nil else {
                    held[key] = Queue()
                    return true
                }
                held[key]!.waiting.append(waiter)
                return false
            }
            if free { waiter.resume() }
        }
    }

    private func release(_ key: String) {
        let next = held.withLockedValue { held -> CheckedContinuation<Void, Never>? in
            guard var queue = held[key], !queue.waiting.isEmpty else {
                held[key] = nil
                return nil
            }
            let next = queue.waiting.removeFirst()
            held[key] = queue
            return next
        }
        next?.resume()  // the key stays held, now by `next`
    }

    /// Keys held now (for tests).
    var count: Int { held.withLockedValue { $0.count } }
}
