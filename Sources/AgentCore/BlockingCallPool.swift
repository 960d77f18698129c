import Foundation

/// The threads connector calls run on. Calls block (a database round trip, an LDAP bind), so
/// they never run on the HTTP event loops.
///
/// Threads start on demand, up to `maxThreads`, and leave after `idleTimeout` without work, so
/// an idle agent holds none and a busy one as many as its targets keep waiting. Each app may
/// run at most `maxPerApp` calls at once; its further calls queue in arrival order. So one
/// slow target (a directory taking seconds per bind) fills at most its own share, and the
/// other apps keep being served.
public final class BlockingCallPool: @unchecked Sendable {
    // @unchecked: every var below is only touched while `lock` is held.
    public let maxThreads: Int
    public let maxPerApp: Int
    let idleTimeout: TimeInterval
    private let lock = NSCondition()
    private var ready: [() -> Void] = []
    private var readyHead = 0
    private var perApp: [String: App] = [:]
    private var threads = 0
    private var idle = 0
    private var stopped = false

    private struct App {
        var running = 0
        var waiting: [() -> Void] = []
    }

    public init(maxThreads: Int = 256, maxPerApp: Int = 64, idleTimeout: TimeInterval = 10) {
        self.maxThreads = max(1, maxThreads)
        self.maxPerApp = max(1, min(maxPerApp, maxThreads))
        self.idleTimeout = idleTimeout
    }

    /// Runs `body` on a pool thread on behalf of `app` and returns its result.
    public func run<T: Sendable>(app: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = execute(app: app) { continuation.resume(with: Result { try body() }) }
            if !accepted { continuation.resume(throwing: CancellationError()) }
        }
    }

    /// Starts `work` on a pool thread on behalf of `app` and returns at once; false (and
    /// `work` never runs) once the pool is shut down.
    @discardableResult
    public func execute(app: String, _ work: @escaping @Sendable () -> Void) -> Bool {
        let call = { [unowned self] in
            work()
            finished(app)
        }
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return false }
        var state = perApp[app] ?? App()
        if state.running < maxPerApp {
            state.running += 1
            makeReady(call)
        } else {
            state.waiting.append(call)
        }
        perApp[app] = state
        return true
    }

    /// Refuses new calls; calls already queued still run, then the threads leave.
    public func shutdown() {
        lock.lock()
        stopped = true
        lock.broadcast()
        lock.unlock()
    }

    /// Threads alive now (for tests and status).
    public var threadCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return threads
    }

    // MARK: - With `lock` held

    private func makeReady(_ work: @escaping () -> Void) {
        ready.append(work)
        // Idle threads each take one piece of work when they wake; start another thread only
        // when there is more work waiting than idle threads to take it.
        if ready.count - readyHead <= idle {
            lock.signal()
        } else if threads < maxThreads {
            threads += 1
            Thread.detachNewThread { [unowned self] in
                Thread.current.name = "connector-call"  // as top -H and ps -L show it
                self.serve()
            }
        }
    }

    private func finished(_ app: String) {
        lock.lock()
        defer { lock.unlock() }
        if perApp[app]!.waiting.isEmpty {
            perApp[app]!.running -= 1
            if perApp[app]!.running == 0 { perApp[app] = nil }
        } else {
            makeReady(perApp[app]!.waiting.removeFirst())
        }
    }

    private func nextWork() -> (() -> Void)? {
        guard readyHead < ready.count else { return nil }
        let work = ready[readyHead]
        readyHead += 1
        if readyHead == ready.count || readyHead > 1024 {
            ready.removeFirst(readyHead)
            readyHead = 0
        }
        return work
    }

    // MARK: - A pool thread

    private func serve() {
        lock.lock()
        while true {
            if let work = nextWork() {
                lock.unlock()
                work()
                lock.lock()
                continue
            }
            if stopped { break }
            idle += 1
            let woken = lock.wait(until: Date(timeIntervalSinceNow: idleTimeout))
            idle -= 1
            if !woken && readyHead >= ready.count { break }
        }
        threads -= 1
        lock.unlock()
    }
}
