import Foundation
import Logging
import NIOConcurrencyHelpers
import SCIMKit

/// One app's connector instance in a child process of its own (`isolation: process`): the
/// same executable in its `connector-host` role (`ConnectorHost`) loads the plugin and serves
/// this app's calls over a Unix socket. A crash, an exit or a call past `callTimeout` (the
/// child is then killed) fails only the calls in flight on the child, each with a 502 naming
/// what happened; the child is started again after a backoff that doubles with each crash
/// in a row (0.1 s up to 30 s). Closing the instance (its generation retired) ends the child,
/// and with it all the memory the plugin's code held.
///
/// One child per app and generation, not per connector: an app's limits and its crashes are
/// its own, and a reload or a fault of one app never touches another's process.
public final class IsolatedConnector: Target, @unchecked Sendable {
    // @unchecked: every mutable thing is in `state`, behind its lock.
    public struct Spec: Sendable {
        public var library: String  // the private copy (DESIGN.md, "Hot reload")
        public var file: String
        public var contentHash: String
        public var privateDirectory: String
        public var configDirectory: String
        public var options: AgentConfig.ProcessOptions
    }

    public let app: String
    public let name: String
    public let version: String
    public var description: String { "connector \(name)" }
    let spec: Spec
    let settings: JSON
    let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var child: Child?
        var pending: [UInt64: Pending] = [:]
        var nextID: UInt64 = 1
        var closed = false
        var crashes = 0
        var restarts = 0
        var crashesInARow = 0
        var lastReason: String?
        var restartAt: Double?
    }

    private struct Pending {
        var continuation: CheckedContinuation<Result<JSON?, SCIMError>, Never>
        var started: Double
        var op: String
    }

    final class Child: @unchecked Sendable {
        // @unchecked: `killReason` and `reaped` are only touched under `IsolatedConnector.state`'s lock.
        let pid: pid_t
        let writer: FrameWriter
        let startedAt: Double
        var killReason: String?
        var reaped = false
        init(pid: pid_t, fd: Int32) {
            self.pid = pid
            self.writer = FrameWriter(fd: fd)
            self.startedAt = monotonicSeconds()
        }
    }

    /// What the child reported when it opened the instance.
    public struct Opened {
        public var instance: IsolatedConnector
        public var shape: ConnectorShape
        public var described: JSON?
    }

    private init(app: String, name: String, version: String, spec: Spec, settings: JSON, logger: Logger) {
        self.app = app
        self.name = name
        self.version = version
        self.spec = spec
        self.settings = settings
        self.logger = logger
    }

    // MARK: - Starting

    /// Reads a plugin's descriptor in a child process, without loading it into the agent.
    static func probe(_ spec: Spec, logger: Logger) throws(SCIMError) -> JSON {
        let (child, reader, facts) = try spawn(spec, app: nil, settings: .null, test: false, logger: logger)
        Glibc.close(reader.fd)
        var status: Int32 = 0
        while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
        return facts
    }

    /// Starts the app's child and opens its instance there; with `test`, the instance must
    /// also pass the connector's `test` (a replacement build proving itself).
    static func open(_ spec: Spec, app: String, settings: JSON, test: Bool, logger: Logger) throws(SCIMError) -> Opened {
        var logger = logger
        logger[metadataKey: "app"] = .string(app)
        let (child, reader, facts) = try spawn(spec, app: app, settings: settings, test: test, logger: logger)
        let name = facts["name"]?.stringValue ?? "?"
        logger[metadataKey: "connector.name"] = .string(name)
        let instance = IsolatedConnector(app: app, name: name, version: facts["version"]?.stringValue ?? "", spec: spec, settings: settings, logger: logger)
        instance.adopt(child, reader)
        guard let shape = facts["shape"].flatMap(ConnectorShape.init(json:)) else {
            instance.close()
            throw SCIMError(status: 502, detail: "connector \(name): its process sent no descriptor")
        }
        let described = facts["described"].flatMap { $0 == .null ? nil : $0 }
        return Opened(instance: instance, shape: shape, described: described)
    }

    /// The path of the running executable, resolved once (a package upgrade may replace the
    /// file while this process runs; the children keep starting the same build).
    static let executable: String = {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }()

    private static func spawn(_ spec: Spec, app: String?, settings: JSON, test: Bool, logger: Logger) throws(SCIMError) -> (Child, Frame.Reader, JSON) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SCIMError(status: 503, detail: "cannot create a socket for the connector process: \(String(cString: strerror(errno)))")
        }
        if fds[1] == 3 {  // dup2 onto itself would keep FD_CLOEXEC
            let moved = fcntl(3, F_DUPFD_CLOEXEC, 10)
            Glibc.close(3)
            fds[1] = moved
        }
        var args = [executable, "connector-host", "--log-level", logger.logLevel.rawValue]
        if let m = spec.options.memoryLimit { args += ["--memory-limit", String(m)] }
        if let n = spec.options.openFiles { args += ["--open-files", String(n)] }
        // The child needs none of the agent's environment (it may hold secrets): the settings
        // come over the socket with their ${ENV} values already filled in.
        // No Swift crash backtracer: it would hold the socket open and take many seconds per
        // crash; the agent reports the signal.
        let environment = ["LANG=C.UTF-8", "MALLOC_ARENA_MAX=2", "PATH=/usr/local/bin:/usr/bin:/bin", "SWIFT_BACKTRACE=enable=no"]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 3)
        _ = spawnAddCloseFrom(&actions, 4)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let argv = args.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        Glibc.close(fds[1])
        guard rc == 0 else {
            Glibc.close(fds[0])
            throw SCIMError(status: 503, detail: "cannot start the connector process \(executable): \(String(cString: strerror(rc)))")
        }
        let child = Child(pid: pid, fd: fds[0])
        let reader = Frame.Reader(fd: fds[0])
        var open: JSONObject = [
            "op": "open", "library": .string(spec.library), "file": .string(spec.file), "contentHash": .string(spec.contentHash),
            "privateDirectory": .string(spec.privateDirectory), "configDirectory": .string(spec.configDirectory), "test": .bool(test),
        ]
        if let app { open["app"] = .string(app); open["settings"] = settings }
        func fail(_ why: String) -> SCIMError {
            kill(pid, SIGKILL)
            Glibc.close(fds[0])
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let exit = Self.reason(status)
            return SCIMError(status: 502, detail: "the connector process \(why) (\(exit))")
        }
        guard child.writer.send(id: 1, .request, JSON.object(open).serializedBytes()) else { throw fail("did not take its first request") }
        let deadline = monotonicSeconds() + spec.options.callTimeout
        while true {
            let left = deadline - monotonicSeconds()
            guard left > 0 else { throw fail("did not open within \(seconds(spec.options.callTimeout))") }
            switch reader.next(timeout: Int32(min(left, 1) * 1000) + 1) {
            case .idle: continue
            case .closed: throw fail("ended while opening")
            case .frame(_, .log, let payload):
                forward(log: payload, logger)
            case .frame(_, .reply, let payload):
                guard let facts = try? JSON.parse(Array(payload)) else { throw fail("sent an unreadable reply") }
                return (child, reader, facts)
            case .frame(_, .failure, let payload):
                let error = (try? JSON.parse(Array(payload))).map(SCIMError.init(frame:)) ?? SCIMError(status: 502, detail: "unreadable error")
                Glibc.close(fds[0])
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                throw error
            case .frame: throw fail("sent a request")
            }
        }
    }

    static func forward(log payload: ArraySlice<UInt8>, _ logger: Logger) {
        guard let m = try? JSON.parse(Array(payload)), let message = m["message"]?.stringValue else { return }
        let level: Logger.Level = switch m["level"]?.intValue ?? 3 {
        case 0: .debug
        case 1: .info
        case 2: .warning
        default: .error
        }
        logger.log(level: level, "\(message)")
    }

    /// How a child ended, from `waitpid`'s status.
    static func reason(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited with status \((status >> 8) & 0xff)" }
        let name = signalNames[signal].map { "SIG" + $0 } ?? "signal \(signal)"
        return "was killed by \(name)"
    }

    static let signalNames: [Int32: String] = [
        SIGSEGV: "SEGV", SIGABRT: "ABRT", SIGBUS: "BUS", SIGILL: "ILL", SIGFPE: "FPE", SIGKILL: "KILL", SIGTERM: "TERM",
        SIGTRAP: "TRAP", SIGXCPU: "XCPU", SIGXFSZ: "XFSZ", SIGSYS: "SYS", SIGINT: "INT", SIGHUP: "HUP", SIGPIPE: "PIPE",
    ]

    // MARK: - Running

    private func adopt(_ child: Child, _ reader: Frame.Reader) {
        state.withLockedValue { $0.child = child }
        let thread = Thread { [self] in readLoop(child, reader) }
        thread.name = "isolated-\(app)"
        thread.start()
    }

    /// On the child's own thread: replies to their callers, log lines to the log, deadlines
    /// watched; when the child ends, its calls in flight fail and a restart is scheduled.
    private func readLoop(_ child: Child, _ reader: Frame.Reader) {
        var protocolError: String?
        var status: Int32 = 0
        var reaped = false
        loop: while true {
            switch reader.next(timeout: 100) {
            case .frame(_, .log, let payload):
                Self.forward(log: payload, logger)
            case .frame(let id, let kind, let payload):
                guard let waiter = state.withLockedValue({ $0.pending.removeValue(forKey: id) }) else { continue }
                waiter.continuation.resume(returning: outcome(kind, payload))
            case .idle:
                // A process the child started may hold its end of the socket open after the
                // child is gone: its exit is watched, not only the socket.
                if waitpid(child.pid, &status, WNOHANG) == child.pid {
                    reaped = true
                    break loop
                }
                checkDeadlines(child)
            case .closed(let why):
                protocolError = why
                break loop
            }
        }
        if let protocolError {
            state.withLockedValue { _ in child.killReason = child.killReason ?? "was killed after it sent \(protocolError)" }
            kill(child.pid, SIGKILL)
        }
        Glibc.close(reader.fd)
        if !reaped { while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {} }
        exited(child, status: status)
    }

    private func outcome(_ kind: Frame.Kind, _ payload: ArraySlice<UInt8>) -> Result<JSON?, SCIMError> {
        if kind == .failure {
            guard let m = try? JSON.parse(Array(payload)) else { return .failure(SCIMError(status: 502, detail: "connector \(name) for app \(app): unreadable error from its process")) }
            return .failure(SCIMError(frame: m))
        }
        if payload.isEmpty { return .success(nil) }
        do {
            return .success(try JSON.parse(Array(payload)))
        } catch {
            return .failure(SCIMError(status: 502, detail: "connector \(name) replied with invalid JSON: \(error.detail)"))
        }
    }

    private func checkDeadlines(_ child: Child) {
        let now = monotonicSeconds()
        let overdue = state.withLockedValue { s -> String? in
            guard s.child === child, child.killReason == nil,
                  let late = s.pending.values.first(where: { now - $0.started > spec.options.callTimeout }) else { return nil }
            child.killReason = "was killed after a call (\(late.op)) exceeded \(Self.seconds(spec.options.callTimeout))"
            return late.op
        }
        if overdue != nil { kill(child.pid, SIGKILL) }
    }

    private func exited(_ child: Child, status: Int32) {
        let now = monotonicSeconds()
        let (failed, reason, restartIn, closed) = state.withLockedValue { s -> ([Pending], String, Double?, Bool) in
            child.reaped = true
            let reason = child.killReason ?? Self.reason(status)
            guard s.child === child else { return ([], reason, nil, true) }
            s.child = nil
            let failed = Array(s.pending.values)
            s.pending = [:]
            if s.closed { return (failed, reason, nil, true) }
            s.crashes += 1
            AgentMetrics.isolatedChild(app: app, event: "crash")
            s.crashesInARow = now - child.startedAt < 10 ? s.crashesInARow + 1 : 1
            s.lastReason = reason
            let backoff = Self.backoff(s.crashesInARow)
            s.restartAt = now + backoff
            return (failed, reason, backoff, false)
        }
        for p in failed {
            p.continuation.resume(returning: .failure(SCIMError(
                status: 502, detail: "connector \(name) for app \(app): its process \(reason) while this \(p.op) was in flight; its outcome is unknown")))
        }
        guard !closed, let restartIn else { return }
        logger.error("connector process ended", metadata: [
            "error": .string(reason), "calls.failed": .stringConvertible(failed.count), "restart.in": .string(Self.seconds(restartIn)),
        ])
        scheduleRestart(after: restartIn)
    }

    /// The wait before the next start: 0.1 s after one crash, doubling with each in a row, at most 30 s.
    static func backoff(_ crashesInARow: Int) -> Double { min(0.1 * pow(2, Double(crashesInARow - 1)), 30) }

    private func scheduleRestart(after delay: Double) {
        Thread.detachNewThread { [self] in
            usleep(UInt32(delay * 1_000_000))
            restart()
        }
    }

    private func restart() {
        guard !state.withLockedValue({ $0.closed }) else { return }
        do {
            let (child, reader, _) = try Self.spawn(spec, app: app, settings: settings, test: false, logger: logger)
            let adopted = state.withLockedValue { s -> Bool in
                guard !s.closed else { return false }
                s.restarts += 1
                AgentMetrics.isolatedChild(app: app, event: "restart")
                s.restartAt = nil
                return true
            }
            guard adopted else {
                Glibc.close(reader.fd)
                return
            }
            adopt(child, reader)
            logger.info("connector process restarted")
        } catch {
            let delay = state.withLockedValue { s -> Double in
                s.crashes += 1
                s.crashesInARow += 1
                s.lastReason = "restart failed: \(error.detail)"
                let backoff = Self.backoff(s.crashesInARow)
                s.restartAt = monotonicSeconds() + backoff
                return backoff
            }
            logger.error("connector process did not restart", metadata: ["error": .string(error.detail), "restart.in": .string(Self.seconds(delay))])
            scheduleRestart(after: delay)
        }
    }

    /// Ends the child once its calls in flight are answered (a retired generation has none):
    /// it sees the socket close, closes its instance and exits; if it has not within 10 s,
    /// it is killed.
    public func close() {
        let child = state.withLockedValue { s -> Child? in
            s.closed = true
            return s.child
        }
        guard let child else { return }
        shutdown(child.writer.fd, Int32(SHUT_WR))
        Thread.detachNewThread { [self] in
            for _ in 0..<100 {
                if state.withLockedValue({ _ in child.reaped }) { return }
                usleep(100_000)
            }
            if !state.withLockedValue({ _ in child.reaped }) { kill(child.pid, SIGKILL) }
        }
    }

    /// For `plugins` and `/healthz`.
    public var processStatus: JSON {
        let now = monotonicSeconds()
        return state.withLockedValue { s in
            var o: JSONObject = [
                "app": .string(app), "state": .string(s.child != nil ? "running" : s.closed ? "stopped" : "restarting"),
                "crashes": .number(Double(s.crashes)), "restarts": .number(Double(s.restarts)),
            ]
            if let c = s.child { o["pid"] = .number(Double(c.pid)) }
            if let r = s.lastReason { o["lastReason"] = .string(r) }
            if let at = s.restartAt { o["restartIn"] = .number((max(0, at - now) * 10).rounded() / 10) }
            return .object(o)
        }
    }


    /// Sends one call to the child and waits for its reply.
    func call(_ op: String, _ message: JSONObject) async throws(SCIMError) -> JSON? {
        var message = message
        message["op"] = .string(op)
        let payload = JSON.object(message).serializedBytes()
        let started = DispatchTime.now().uptimeNanoseconds

        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<JSON?, SCIMError>, Never>) in
            let sent = state.withLockedValue { s -> (Child, UInt64)? in
                guard let child = s.child else { return nil }
                let id = s.nextID
                s.nextID += 1
                s.pending[id] = Pending(continuation: continuation, started: monotonicSeconds(), op: op)
                return (child, id)
            }
            guard let (child, id) = sent else {
                continuation.resume(returning: .failure(unavailable()))
                return
            }
            if !child.writer.send(id: id, .request, payload), let p = state.withLockedValue({ $0.pending.removeValue(forKey: id) }) {
                p.continuation.resume(returning: .failure(SCIMError(status: 503, detail: "connector \(name) for app \(app): its process is gone; the call was not sent")))
            }
        }
        var failure: SCIMError?
        if case .failure(let error) = result { failure = error }
        AgentMetrics.connectorCall(app: app, connector: name, isolation: "process", started: started, error: failure)
        return try result.get()
    }

    private func unavailable() -> SCIMError {
        let (reason, closed, restartIn) = state.withLockedValue { s in (s.lastReason, s.closed, s.restartAt.map { max(0, $0 - monotonicSeconds()) }) }
        if closed { return SCIMError(status: 503, detail: "connector \(name) for app \(app): this generation is closed") }
        var detail = "connector \(name) for app \(app) is restarting: its process \(reason ?? "ended")"
        if let restartIn { detail += "; next start in \(Self.seconds(max(0.1, restartIn)))" }
        return SCIMError(status: 503, detail: detail)
    }

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s)
    }

    private func object(_ value: JSON?, _ op: String) throws(SCIMError) -> JSON {
        guard let value, case .object = value else { throw SCIMError(status: 502, detail: "connector \(name) returned no resource from \(op)") }
        return value
    }

    // MARK: - Target

    public func create(_ kind: Capabilities.ResourceKind, _ resource: JSON) async throws(SCIMError) -> JSON {
        try object(try await call("create", ["kind": .string(kind.rawValue), "resource": resource]), "create")
    }

    public func get(_ kind: Capabilities.ResourceKind, _ id: String) async throws(SCIMError) -> JSON {
        try object(try await call("get", ["kind": .string(kind.rawValue), "id": .string(id)]), "get")
    }

    public func replace(_ kind: Capabilities.ResourceKind, _ id: String, _ resource: JSON, ifUnchanged expected: JSON?) async throws(SCIMError) -> JSON {
        try object(try await call("replace", ["kind": .string(kind.rawValue), "id": .string(id), "resource": resource, "expected": expected ?? .null]), "replace")
    }

    public func patch(_ kind: Capabilities.ResourceKind, _ id: String, _ patch: PatchRequest) async throws(SCIMError) -> JSON {
        try object(try await call("patch", ["kind": .string(kind.rawValue), "id": .string(id), "patch": patch.json]), "patch")
    }

    public func delete(_ kind: Capabilities.ResourceKind, _ id: String) async throws(SCIMError) {
        _ = try await call("delete", ["kind": .string(kind.rawValue), "id": .string(id)])
    }

    public func search(_ kind: Capabilities.ResourceKind, _ query: Query) async throws(SCIMError) -> SearchResult {
        let reply = try object(try await call("search", ["kind": .string(kind.rawValue), "query": query.json]), "search")
        return try SearchResult(json: reply, connector: name)
    }

    public func changeMembers(_ groupID: String, _ members: [JSON], add: Bool) async throws(SCIMError) {
        _ = try await call("members", ["group": .string(groupID), "members": .array(members), "add": .bool(add)])
    }

    public func test() async throws(SCIMError) -> String {
        try await call("test", [:])?.stringValue ?? "ok"
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34): the child keeps no descriptor of
/// the agent's but its socket.
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
func spawnAddCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32
