import Foundation
import SCIMKit

/// The threads connector calls run on. Calls block (a database round trip, an LDAP bind), so
/// they never run on the HTTP event loops.
///
/// Threads start on demand, up to `maxThreads`, and leave after `idleTimeout` without work, so
/// an idle agent holds none and a busy one as many as its targets keep waiting; new work goes
/// to the most recently idle thread, so a burst's surplus leaves once the burst is over.
/// Each app may run at most `maxPerApp` calls at once; its further calls queue in arrival
/// order. So one slow target (a directory taking seconds per bind) fills at most its own
/// share, and the other apps keep being served.
public final class BlockingCallPool: @unchecked Sendable {
    // @unchecked: every var below is only touched while `mutex` is held.
    public let maxThreads: Int
    public let maxPerApp: Int
    let idleTimeout: TimeInterval
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Work no thread has taken yet: it waits here only when `maxThreads` are all busy.
    private var ready: [Work] = []
    private var readyHead = 0
    /// Idle threads, the one idle the shortest time last. New work goes to that one, so under
    /// light traffic the same few threads stay warm and the others reach `idleTimeout` and
    /// leave (a shared condition variable would wake them in turn and keep them all alive).
    private var idle: [IdleThread] = []
    private var perApp: [String: App] = [:]
    private var threads = 0
    private var stopped = false

    private typealias Work = @Sendable () -> Void

    private struct App {
        var running = 0
        var waiting: [Work] = []
    }

    /// An idle thread's own wake-up, and the work handed to it.
    private final class IdleThread {
        let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        var work: Work?

        init() {
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            pthread_cond_init(condition, &attributes)
            pthread_condattr_destroy(&attributes)
        }

        deinit {
            pthread_cond_destroy(condition)
            condition.deallocate()
        }
    }

    public init(maxThreads: Int = 256, maxPerApp: Int = 64, idleTimeout: TimeInterval = 10) {
        self.maxThreads = max(1, maxThreads)
        self.maxPerApp = max(1, min(maxPerApp, maxThreads))
        self.idleTimeout = idleTimeout
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Runs `body` on a pool thread on behalf of `app` and returns its result; a 503 once the
    /// pool is shut down.
    public func run<T: Sendable>(app: String, _ body: @escaping @Sendable () throws(SCIMError) -> T) async throws(SCIMError) -> T {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, SCIMError>, Never>) in
            let accepted = execute(app: app) { continuation.resume(returning: Result { () throws(SCIMError) in try body() }) }
            if !accepted { continuation.resume(returning: .failure(SCIMError(status: 503, detail: "the agent is shutting down"))) }
        }
        return try result.get()
    }

    /// Starts `work` on a pool thread on behalf of `app` and returns at once; false (and
    /// `work` never runs) once the pool is shut down.
    @discardableResult
    public func execute(app: String, _ work: @escaping @Sendable () -> Void) -> Bool {
        let call: Work = { [unowned self] in
            work()
            finished(app)
        }
        return withLock {
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
    }

    /// Refuses new calls; calls already queued still run, then the threads leave.
    public func shutdown() {
        withLock {
            stopped = true
            for thread in idle { pthread_cond_signal(thread.condition) }
        }
    }

    /// Threads alive now (for tests and status).
    public var threadCount: Int { withLock { threads } }

    // MARK: - With `mutex` held

    private func makeReady(_ work: @escaping Work) {
        if let thread = idle.popLast() {
            thread.work = work
            pthread_cond_signal(thread.condition)
        } else if threads < maxThreads {
            threads += 1
            Thread.detachNewThread { [unowned self] in
                Thread.current.name = "connector-call"  // as top -H and ps -L show it
                self.serve(first: work)
            }
        } else {
            ready.append(work)
        }
    }

    private func finished(_ app: String) {
        withLock {
            if perApp[app]!.waiting.isEmpty {
                perApp[app]!.running -= 1
                if perApp[app]!.running == 0 { perApp[app] = nil }
            } else {
                makeReady(perApp[app]!.waiting.removeFirst())
            }
        }
    }

    private func nextReady() -> Work? {
        guard readyHead < ready.count else { return nil }
        let work = ready[readyHead]
        readyHead += 1
        if readyHead == ready.count || readyHead > 1024 {
            ready.removeFirst(readyHead)
            readyHead = 0
        }
        return work
    }

    /// Waits, idle, until work is handed over or `idleTimeout` passes (nil: leave).
    private func waitForWork(_ thread: IdleThread) -> Work? {
        idle.append(thread)
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nanoseconds = Int(now.tv_nsec) + Int(idleTimeout.truncatingRemainder(dividingBy: 1) * 1e9)
        var deadline = timespec(tv_sec: now.tv_sec + Int(idleTimeout) + nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
        while thread.work == nil && !stopped {
            if pthread_cond_timedwait(thread.condition, mutex, &deadline) == ETIMEDOUT { break }
        }
        if let work = thread.work {
            thread.work = nil
            return work
        }
        idle.removeAll { $0 === thread }
        return nil
    }

    // MARK: - A pool thread

    private func serve(first: @escaping Work) {
        let thread = IdleThread()
        var work: Work? = first
        pthread_mutex_lock(mutex)
        while let next = work {
            pthread_mutex_unlock(mutex)
            next()
            pthread_mutex_lock(mutex)
            work = nextReady() ?? (stopped ? nil : waitForWork(thread))
        }
        threads -= 1
        pthread_mutex_unlock(mutex)
    }
}
