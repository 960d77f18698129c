import Foundation
import Logging
import NIOConcurrencyHelpers
import SCIMKit

/// Which connector generation serves each app. Loads plugins from the plugins directory,
/// opens instances for the apps that name them, and swaps generations when a plugin file or
/// the configuration changes; `ConnectorLifecycle` decides, this class does the I/O.
public final class ConnectorRegistry: Sendable {
    public struct PluginStatus: Sendable {
        public var file: String
        public var connector: String?
        public var version: String?
        public var contentHash: String?
        public var generation: Int?
        public var loadedAt: Date?
        public var state: String
        public var inFlight: Int
        public var lastError: String?
        public var apps: [String]
        /// The child processes of its isolated apps (`isolation: process`).
        public var processes: [JSON] = []
    }

    struct Slot {
        var lifecycle = ConnectorLifecycle()
        var generations: [Int: Generation] = [:]  // serving and draining
    }

    struct State {
        var config: AgentConfig
        var slots: [String: Slot] = [:]  // by connector name
        var failedFiles: [String: String] = [:]  // file → reason, for files that provide no connector
        var retired: [PluginStatus] = []  // the most recent retired generations, for `plugins`
        var remotes: [String: RemoteTarget] = [:]  // remote apps by name
        var given: [String: (target: any Target, capabilities: Capabilities)] = [:]  // `serve(app:…)`
        var nextGeneration = 1
        /// `plugins.trust.publicKeys`, read.
        var trustedKeys: [PluginSignature.PublicKey] = []
    }

    let state: NIOLockedValueBox<State>
    let logger: Logger
    public let privateDirectory: String
    /// False for `plugins`, which only inspects libraries and opens nothing.
    let openInstances: Bool
    static let retiredHistory = 200

    /// The HTTP clients of remote apps (nil where none are served, as for `plugins`).
    let remoteClients: RemoteClients?
    /// Where connector calls run (`ConnectorInstance.run`).
    public let calls: BlockingCallPool
    /// The apps' deletion guards; a configuration reload releases them.
    public let deletionGuard = DeletionGuard()

    public init(config: AgentConfig, logger: Logger, openInstances: Bool = true, remoteClients: RemoteClients? = nil,
                calls: BlockingCallPool = BlockingCallPool()) throws {
        self.openInstances = openInstances
        self.remoteClients = remoteClients
        self.calls = calls
        self.state = NIOLockedValueBox(State(config: config))
        self.logger = logger
        self.privateDirectory = RuntimePaths.privateDirectory(for: config)
        let remotes = makeRemotes(config, keeping: [:])
        let keys = try Self.trustedKeys(config)
        state.withLockedValue { $0.remotes = remotes; $0.trustedKeys = keys }
        try Self.makePrivateDirectory(privateDirectory)
    }

    static func trustedKeys(_ config: AgentConfig) throws -> [PluginSignature.PublicKey] {
        do throws(PluginSignature.KeyError) {
            return try config.trustedKeys.map { (file: String) throws(PluginSignature.KeyError) in try PluginSignature.PublicKey(file: file) }
        } catch {
            throw AgentConfig.Invalid(problems: [AgentConfig.Problem(file: config.file, key: "plugins.trust.publicKeys", error.message)])
        }
    }

    /// The private copies are what gets loaded: their directory is the agent's alone.
    static func makePrivateDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var st = stat()
        guard stat(path, &st) == 0, st.st_uid == geteuid() else {
            throw AgentConfig.Invalid(problems: [AgentConfig.Problem(file: path, "the agent's private plugin directory belongs to another user; remove it")])
        }
        chmod(path, 0o700)
    }

    public var config: AgentConfig { state.withLockedValue { $0.config } }

    /// How the app's clients authenticate, or nil when no app has that name.
    public func auth(app: String) -> AgentConfig.Auth? { state.withLockedValue { $0.config.apps[app]?.auth } }

    // MARK: - Leases

    /// Runs `body` with a lease on the app's target: the generation serving when it starts
    /// keeps serving this call to its end, across a hot reload (DESIGN.md). A remote app
    /// whose discovery documents are being read for the first time waits for them (a few
    /// seconds at most) unless `awaitingDiscovery` is false (a status page has no need).
    public func withLease<T: Sendable>(app: String, awaitingDiscovery: Bool = true, _ body: (Lease) async throws(SCIMError) -> T) async throws(SCIMError) -> T {
        var lease = try lease(app: app)
        if awaitingDiscovery, let remote = lease.remote, !remote.firstDiscovery.isOpen {
            // Leased again after the discovery, so that its capabilities are the discovered ones.
            lease.release()
            await remote.awaitFirstDiscovery()
            lease = try self.lease(app: app)
        }
        defer { lease.release() }
        return try await body(lease)
    }

    /// A lease to release exactly once: `withLease` does both.
    func lease(app: String) throws(SCIMError) -> Lease {
        let (result, limits) = state.withLockedValue { s in (locked(app, &s), s.config.apps[app]?.deletionGuard ?? AgentConfig.GuardLimits()) }
        var leased = try result.get()
        leased.guardLimits = limits
        return leased
    }

    /// The lease, under the state's lock.
    private func locked(_ app: String, _ s: inout State) -> Result<Lease, SCIMError> {
        guard let appConfig = s.config.apps[app] else { return .failure(.notFound("no app named \(app)")) }
        if let (target, capabilities) = s.given[app] {
            return .success(Lease(app: app, target: target, capabilities: capabilities, unknownAttributes: appConfig.unknownAttributes, generation: nil, registry: self))
        }
        guard case .connector(let name, _) = appConfig.target else {
            guard let remote = s.remotes[app] else { return .failure(SCIMError(status: 503, detail: "app \(app): remote targets are not served by this command")) }
            return .success(Lease(app: app, target: remote, capabilities: remote.capabilities, unknownAttributes: appConfig.unknownAttributes, generation: nil, registry: self, remote: remote))
        }
        guard let number = s.slots[name]?.lifecycle.acquire(), let generation = s.slots[name]?.generations[number] else {
            return .failure(SCIMError(status: 503, detail: "connector \(name) for app \(app) is not loaded: no plugin in \(s.config.pluginsDirectory) provides it"))
        }
        guard let instance = generation.instances[app], let capabilities = generation.capabilities[app] else {
            _ = s.slots[name]?.lifecycle.release(number)
            let why = generation.appErrors[app] ?? "it was not opened for this app"
            return .failure(SCIMError(status: 503, detail: "connector \(name) for app \(app) is unavailable: \(why)"))
        }
        return .success(Lease(app: app, target: instance, capabilities: capabilities, unknownAttributes: appConfig.unknownAttributes, generation: generation, registry: self))
    }

    /// Serves a configured app from `target` rather than from what its configuration names:
    /// a target built in code (a test's fake, an embedding program's own).
    public func serve(app: String, target: any Target, capabilities: Capabilities) {
        state.withLockedValue { $0.given[app] = (target, capabilities) }
    }

    func release(_ generation: Generation) {
        let action = state.withLockedValue { s in
            s.slots[generation.build.name]?.lifecycle.release(generation.number) ?? .none
        }
        perform(action, connector: generation.build.name)
    }

    // MARK: - Loading

    /// Loads every `*.so` in the plugins directory. Failures are recorded, never fatal.
    public func loadAll() {
        let dir = config.pluginsDirectory
        let files = Self.pluginFiles(in: dir)
        if files.isEmpty { logger.warning("no plugins found", metadata: ["plugins.directory": .string(dir)]) }
        for f in files { install(file: f) }
    }

    static func pluginFiles(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".so") }.sorted().map { dir + "/" + $0 }
    }

    /// Loads `file` as a new generation and makes it current for its connector name. If it
    /// fails, whatever served before keeps serving and the error is recorded.
    @discardableResult
    public func install(file: String) -> Bool {
        let (config, keys) = state.withLockedValue { ($0.config, $0.trustedKeys) }
        if let refusal = PluginTrust.refusal(file: file, directory: config.pluginsDirectory) {
            recordFailure(file: file, reason: refusal)
            return false
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            recordFailure(file: file, reason: "cannot read the file")
            return false
        }
        if let refusal = PluginTrust.signatureRefusal(file: file, data: data, keys: keys) {
            recordFailure(file: file, reason: refusal)
            return false
        }
        let hash = ContentHash.fnv1a64(data)
        if state.withLockedValue({ s in s.slots.values.contains { $0.lifecycle.serves(file: file, contentHash: hash) } }) { return true }
        let build: PluginBuild
        do {
            build = try load(file: file, data: data, contentHash: hash, config: config)
        } catch {
            recordFailure(file: file, reason: error.reason)
            return false
        }
        let admission = state.withLockedValue { s in s.slots[build.name]?.lifecycle.admit(file: file) ?? .open(test: false) }
        guard case .open(let test) = admission else {
            if case .duplicate(let other) = admission {
                _ = build.unloadIfAllowed()
                recordFailure(file: file, reason: "connector \(build.name) is already provided by \(other)")
            }
            return false
        }
        let (generation, errors) = openGeneration(build, config: config, test: test)
        let action = state.withLockedValue { s -> ConnectorLifecycle.Action in
            var slot = s.slots[build.name] ?? Slot()
            slot.generations[generation.number] = generation
            let action = slot.lifecycle.opened(number: generation.number, contentHash: hash, file: file, openErrors: errors)
            if case .discard = action {} else { s.failedFiles[file] = nil }
            s.slots[build.name] = slot
            return action
        }
        AgentMetrics.pluginLoad(connector: build.name, result: { if case .discard = action { return "rejected" } else { return "loaded" } }())
        if case .discard = action {} else {
            logger.info("connector loaded", metadata: [
                "connector.name": .string(build.name), "connector.version": .string(build.version),
                "plugin.file": .string(file), "plugin.generation": .stringConvertible(generation.number),
                "apps": .string(generation.instances.keys.sorted().joined(separator: ",")),
            ])
        }
        perform(action, connector: build.name)
        if case .discard = action { return false }
        return true
    }

    struct LoadFailure: Error {
        var reason: String
    }

    /// Loads a plugin file's build: into the agent, unless the configuration has isolated
    /// apps; then its descriptor is read in a child process first, and the library is loaded
    /// into the agent only if an in-process app uses it.
    func load(file: String, data: Data, contentHash hash: String, config: AgentConfig) throws(LoadFailure) -> PluginBuild {
        func library() throws(LoadFailure) -> PluginBuild {
            do {
                return PluginBuild(library: try PluginLibrary.load(file: file, data: data, contentHash: hash, privateDirectory: privateDirectory, configDirectory: config.directory, logger: logger))
            } catch {
                throw LoadFailure(reason: error.reason)
            }
        }
        guard openInstances, config.apps.values.contains(where: { $0.isolation == .process }) else { return try library() }
        let path: String
        do {
            path = try PluginLibrary.privateCopy(file: file, data: data, contentHash: hash, privateDirectory: privateDirectory)
        } catch {
            throw LoadFailure(reason: error.reason)
        }
        let facts: JSON
        do {
            facts = try IsolatedConnector.probe(spec(path: path, file: file, contentHash: hash, config: config, options: .init()), logger: logger)
        } catch {
            throw LoadFailure(reason: error.detail)
        }
        guard let name = facts["name"]?.stringValue else { throw LoadFailure(reason: "the connector process reported no name") }
        if Self.needsLibrary(name, config) { return try library() }
        return PluginBuild(name: name, version: facts["version"]?.stringValue ?? "", sourceFile: file, contentHash: hash, privatePath: path)
    }

    /// Whether an app of `config` runs connector `name` in-process.
    static func needsLibrary(_ name: String, _ config: AgentConfig) -> Bool {
        config.apps.values.contains { app in
            guard case .connector(let n, _) = app.target else { return false }
            return n == name && app.isolation == .inProcess
        }
    }

    func spec(path: String, file: String, contentHash: String, config: AgentConfig, options: AgentConfig.ProcessOptions) -> IsolatedConnector.Spec {
        IsolatedConnector.Spec(library: path, file: file, contentHash: contentHash, privateDirectory: privateDirectory, configDirectory: config.directory, options: options)
    }

    /// Opens an instance of `build` for every app of `config` that names it: in the agent, or
    /// in a child process of its own for an app with `isolation: process`.
    func openGeneration(_ build: PluginBuild, config: AgentConfig, test: Bool) -> (Generation, String) {
        let number = state.withLockedValue { s in
            defer { s.nextGeneration += 1 }
            return s.nextGeneration
        }
        var instances: [String: any AppInstance] = [:]
        var capabilities: [String: Capabilities] = [:]
        var appErrors: [String: String] = [:]
        for app in config.apps.values.sorted(by: { $0.name < $1.name }) {
            guard openInstances, case .connector(let name, let settings) = app.target, name == build.name else { continue }
            do {
                if app.isolation == .process {
                    let spec = spec(path: build.privatePath, file: build.sourceFile, contentHash: build.contentHash, config: config, options: app.process)
                    let opened = try IsolatedConnector.open(spec, app: app.name, settings: settings, test: test, logger: logger)
                    instances[app.name] = opened.instance
                    capabilities[app.name] = CapabilityDiscovery.capabilities(of: opened.shape, described: opened.described, auth: app.auth)
                    continue
                }
                guard let library = build.library else { throw SCIMError(status: 503, detail: "the plugin was loaded for isolated apps only; restart the agent") }
                let instance = try ConnectorInstance.open(library, app: app.name, settings: settings, calls: calls)
                instances[app.name] = instance
                if test { _ = try instance.testNow() }  // a replacement must prove itself first
                capabilities[app.name] = CapabilityDiscovery.capabilities(of: ConnectorShape(library), described: try instance.describe(), auth: app.auth)
            } catch let error as ConnectorInstance.OpenError {
                appErrors[app.name] = error.error.detail
            } catch let error as SCIMError {
                appErrors[app.name] = error.detail
            } catch {
                appErrors[app.name] = "\(error)"
            }
        }
        for (app, reason) in appErrors.sorted(by: { $0.key < $1.key }) {
            logger.error("connector could not open for app", metadata: ["app": .string(app), "connector.name": .string(build.name), "error": .string(reason)])
        }
        let summary = appErrors.sorted(by: { $0.key < $1.key }).map { "app \($0.key): \($0.value)" }.joined(separator: "; ")
        return (Generation(number: number, build: build, instances: instances, capabilities: capabilities, appErrors: appErrors), summary)
    }

    func recordFailure(file: String, reason: String) {
        AgentMetrics.pluginLoad(connector: "", result: "failed")
        logger.error("plugin not loaded", metadata: ["plugin.file": .string(file), "error": .string(reason)])
        state.withLockedValue { s in
            if let name = s.slots.first(where: { $0.value.lifecycle.file == file && $0.value.lifecycle.serving != nil })?.key {
                s.slots[name]?.lifecycle.loadFailed(reason)
            } else {
                s.failedFiles[file] = reason
            }
        }
    }

    /// A plugin file was deleted: apps keep serving on the loaded generation.
    public func fileRemoved(_ file: String) {
        state.withLockedValue { s in
            s.failedFiles[file] = nil
            for (name, slot) in s.slots where slot.lifecycle.file == file { s.slots[name]?.lifecycle.fileWasRemoved() }
        }
        logger.warning("plugin file removed; its loaded generation keeps serving", metadata: ["plugin.file": .string(file)])
    }

    /// Applies a new configuration: new generations of every loaded connector, opened for the
    /// new set of apps, swapped in together. If any app cannot open, nothing changes.
    public func reload(config newConfig: AgentConfig) throws {
        let builds = state.withLockedValue { s in
            s.slots.values.compactMap { slot in slot.lifecycle.serving.flatMap { slot.generations[$0]?.build } }
        }
        let keys = try Self.trustedKeys(newConfig)
        var fresh: [Generation] = []
        var problems: [AgentConfig.Problem] = []
        for var build in builds {
            if build.library == nil && Self.needsLibrary(build.name, newConfig), let data = FileManager.default.contents(atPath: build.privatePath) {
                // An app of this connector now runs in-process: load the build into the agent.
                do {
                    build = PluginBuild(library: try PluginLibrary.load(
                        file: build.sourceFile, data: data, contentHash: build.contentHash, privateDirectory: privateDirectory,
                        configDirectory: newConfig.directory, logger: logger))
                } catch {
                    problems.append(AgentConfig.Problem(file: newConfig.file, "connector \(build.name): \(error.reason)"))
                    continue
                }
            }
            let (g, errors) = openGeneration(build, config: newConfig, test: true)
            fresh.append(g)
            if !errors.isEmpty { problems.append(AgentConfig.Problem(file: newConfig.file, "connector \(build.name): \(errors)")) }
        }
        if !problems.isEmpty {
            for g in fresh { g.closeInstances() }
            throw AgentConfig.Invalid(problems: problems)
        }
        let remotes = makeRemotes(newConfig, keeping: state.withLockedValue { $0.remotes })
        let actions = state.withLockedValue { s -> [(String, ConnectorLifecycle.Action)] in
            s.config = newConfig
            s.remotes = remotes
            s.trustedKeys = keys
            return fresh.map { g in
                let name = g.build.name
                s.slots[name]?.generations[g.number] = g
                return (name, s.slots[name]?.lifecycle.loaded(number: g.number, contentHash: g.build.contentHash) ?? .none)
            }
        }
        for (name, action) in actions { perform(action, connector: name) }
        let released = deletionGuard.releaseAll()
        if !released.isEmpty { logger.warning("deletion guard released by a configuration reload", metadata: ["apps": .string(released.joined(separator: ","))]) }
        logger.info("configuration reloaded", metadata: ["apps": .string(newConfig.appNames.joined(separator: ","))])
    }

    // MARK: - Remote apps

    func makeRemotes(_ config: AgentConfig, keeping old: [String: RemoteTarget]) -> [String: RemoteTarget] {
        guard let remoteClients else { return [:] }
        var out: [String: RemoteTarget] = [:]
        for app in config.apps.values {
            guard case .remote(let remote) = app.target else { continue }
            if let existing = old[app.name], existing.config == remote, existing.auth == app.auth { out[app.name] = existing; continue }
            do {
                let client = remoteClients.client(connectTimeout: remote.connectTimeout)
                out[app.name] = try RemoteTarget(app: app.name, config: remote, client: client, auth: app.auth, logger: logger)
            } catch {
                logger.error("remote app not set up", metadata: ["app": .string(app.name), "error": .string("\(error)")])
            }
        }
        return out
    }

    /// Remote apps whose first discovery has not finished (succeeded or failed) yet.
    public var appsAwaitingDiscovery: [String] {
        remotes.filter { !$0.value.firstDiscovery.isOpen }.map(\.key).sorted()
    }

    /// The remote apps now configured (their discovery is `RemoteDiscoveryService`'s).
    var remotes: [String: RemoteTarget] { state.withLockedValue { $0.remotes } }

    func perform(_ action: ConnectorLifecycle.Action, connector: String) {
        if case .discard(let number, let reason) = action {
            guard let g = state.withLockedValue({ $0.slots[connector]?.generations.removeValue(forKey: number) }) else { return }
            g.closeInstances()
            _ = g.build.unloadIfAllowed()
            logger.error("plugin replacement rejected", metadata: ["plugin.file": .string(g.build.sourceFile), "connector.name": .string(connector), "error": .string(reason)])
            return
        }
        guard case .retire(let number) = action else { return }
        let found = state.withLockedValue { s -> (Generation, Bool)? in
            guard let g = s.slots[connector]?.generations[number] else { return nil }
            s.slots[connector]?.generations[number] = nil
            s.slots[connector]?.lifecycle.retired(number)
            let stillUsed = g.build.library.map { library in s.slots.values.contains { $0.generations.values.contains { $0.build.library === library } } } ?? false
            s.retired.append(Self.status(g, slot: s.slots[connector], state: "retired", inFlight: 0, lastError: nil, config: s.config))
            if s.retired.count > Self.retiredHistory { s.retired.removeFirst(s.retired.count - Self.retiredHistory) }
            return (g, stillUsed)
        }
        guard let (generation, stillUsed) = found else { return }
        generation.closeInstances()
        let unloaded = stillUsed ? false : generation.build.unloadIfAllowed()
        logger.info("connector generation retired", metadata: [
            "connector.name": .string(connector), "plugin.generation": .stringConvertible(number), "unloaded": .stringConvertible(unloaded),
        ])
    }

    /// Refuses new connector calls, lets those queued finish, and closes every instance.
    public func shutdown() async {
        calls.shutdown()
        let generations = state.withLockedValue { s in s.slots.values.flatMap { $0.generations.values } }
        for g in generations { g.closeInstances() }
        await remoteClients?.shutdown()
    }

    // MARK: - Status

    static func status(_ g: Generation, slot: Slot?, state: String, inFlight: Int, lastError: String?, config: AgentConfig) -> PluginStatus {
        let apps = config.apps.values.compactMap { app -> String? in
            if case .connector(let n, _) = app.target, n == g.build.name { return app.name }
            return nil
        }.sorted()
        return PluginStatus(
            file: slot?.lifecycle.file ?? g.build.sourceFile, connector: g.build.name, version: g.build.version,
            contentHash: g.build.contentHash, generation: g.number, loadedAt: g.build.loadedAt, state: state,
            inFlight: inFlight, lastError: lastError, apps: apps, processes: state == "retired" ? [] : g.processes)
    }

    public func status() -> [PluginStatus] {
        state.withLockedValue { s in
            var out: [PluginStatus] = []
            for (_, slot) in s.slots.sorted(by: { $0.key < $1.key }) {
                for (number, g) in slot.generations.sorted(by: { $0.key > $1.key }) {
                    let info = slot.lifecycle.generations[number]
                    var state = info?.state.rawValue ?? "retired"
                    if info?.state == .serving && slot.lifecycle.fileRemoved { state = "serving (file removed)" }
                    let error = number == slot.lifecycle.serving ? slot.lifecycle.lastError : nil
                    out.append(Self.status(g, slot: slot, state: state, inFlight: info?.inFlight ?? 0, lastError: error, config: s.config))
                }
            }
            out += s.retired.reversed()
            for (file, reason) in s.failedFiles.sorted(by: { $0.key < $1.key }) {
                out.append(PluginStatus(file: file, state: "failed", inFlight: 0, lastError: reason, apps: []))
            }
            return out
        }
    }
}

extension ConnectorRegistry.PluginStatus {
    public var json: JSON {
        var o: JSONObject = ["file": .string(file), "state": .string(state), "inFlight": .number(Double(inFlight))]
        if let connector { o["connector"] = .string(connector) }
        if let version { o["version"] = .string(version) }
        if let contentHash { o["contentHash"] = .string(contentHash) }
        if let generation { o["generation"] = .number(Double(generation)) }
        if let loadedAt { o["loadedAt"] = .string(DateTime.format(loadedAt.timeIntervalSince1970)) }
        if let lastError { o["lastError"] = .string(lastError) }
        o["apps"] = .array(apps.map(JSON.string))
        if !processes.isEmpty { o["processes"] = .array(processes) }
        return .object(o)
    }
}

/// Where the agent keeps private copies of plugins (one directory per user and configuration
/// file), and where the running agent publishes its state for `plugins` and `guard`: the
/// configured `runtimeDirectory` (the package's unit has systemd make `/run/provisioning-agent`),
/// else the private directory, so the commands find the agent run with the same file.
public enum RuntimePaths {
    public static func stateDirectory(for config: AgentConfig) -> String {
        config.runtimeDirectory ?? privateDirectory(for: config)
    }

    public static func privateDirectory(for config: AgentConfig) -> String {
        let base = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"] ?? NSTemporaryDirectory()
        let tag = ContentHash.fnv1a64(Data(config.file.utf8)).prefix(12)
        return (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/provisioning-agent-\(getuid())-\(tag)"
    }
}
