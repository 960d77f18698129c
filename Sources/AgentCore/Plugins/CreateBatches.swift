import CConnectorABI
import NIOConcurrencyHelpers
import SCIMKit

/// The creates of one connector instance and resource type that go through the connector's
/// `create_many` (group commit): while a call is running, the creates that arrive queue here
/// and go together in the next call (`write`, made on the call pool). No thread waits for a
/// queued create, and a batch grows with the load by itself: one resource when the target is
/// idle, up to `maxBatch` when it is busy.
final class CreateBatches: Sendable {
    static let maxBatch = Int(SCIMC_CREATE_MANY_MAX)
    /// Calls running at once. A second call starts only when enough creates wait for one:
    /// small batches cost the target more per row than they save in waiting (measured with
    /// MariaDB: one call at a time is best at 16 clients, a second one from 8 waiting at 64).
    static let maxRunning = 2
    static let waitingForSecondCall = 8

    typealias Write = @Sendable ([JSON]) -> [Result<JSON, SCIMError>]
    private let state = NIOLockedValueBox(State())

    private struct State {
        var waiting: [(resource: JSON, continuation: CheckedContinuation<JSON, any Error>)] = []
        var running = 0
    }

    init() {}

    /// Creates `resource` with the next batch `write` call, made on `calls` for `app`.
    func create(_ resource: JSON, app: String, calls: BlockingCallPool, write: @escaping Write) async throws(SCIMError) -> JSON {
        do {
            return try await withCheckedThrowingContinuation { continuation in
                let start = state.withLockedValue { s in
                    s.waiting.append((resource, continuation))
                    guard s.running == 0 || (s.running < Self.maxRunning && s.waiting.count >= Self.waitingForSecondCall) else { return false }
                    s.running += 1
                    return true
                }
                if start && !calls.execute(app: app, { self.drain(write) }) {
                    fail(SCIMError(status: 503, detail: "the agent is shutting down"))
                }
            }
        } catch let error as SCIMError {
            throw error
        } catch {
            throw SCIMError(status: 500, detail: "\(error)")
        }
    }

    /// On a pool thread: writes batches until none is waiting.
    private func drain(_ write: Write) {
        while true {
            let batch = state.withLockedValue { s in
                let batch = s.waiting.prefix(Self.maxBatch)
                s.waiting.removeFirst(batch.count)
                if batch.isEmpty { s.running -= 1 }
                return batch
            }
            if batch.isEmpty { return }
            var outcomes = write(batch.map(\.resource))
            if outcomes.count != batch.count {
                let bug = SCIMError(status: 500, detail: "\(outcomes.count) outcomes for \(batch.count) creates")
                outcomes = Array(repeating: .failure(bug), count: batch.count)
            }
            for (waiter, outcome) in zip(batch, outcomes) { waiter.continuation.resume(with: outcome.mapError { $0 }) }
        }
    }

    /// Fails every waiting create (the pool refused the call that would have written them).
    private func fail(_ error: SCIMError) {
        let waiting = state.withLockedValue { s in
            defer { s.waiting = []; s.running -= 1 }
            return s.waiting
        }
        for waiter in waiting { waiter.continuation.resume(throwing: error) }
    }
}
