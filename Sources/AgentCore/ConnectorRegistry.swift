import Foundation
import Logging
import NIOConcurrencyHelpers
import SCIMKit

/// Which connector generation serves each app. Loads plugins from the plugins directory,
/// opens instances for the apps that name them, and swaps generations when a plugin file
/// changes (DESIGN.md, "Hot reload").
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
    }

    struct Slot {
        var file: String
        var current: Generation?
        var draining: [Generation] = []
        var fileRemoved = false
        var lastError: String?
    }

    struct State {
        var config: AgentConfig
        var slots: [String: Slot] = [:]  // by connector name
        var failedFiles: [String: String] = [:]  // file → reason, for files that never loaded
        var nextGeneration = 1
    }

    let state: NIOLockedValueBox<State>
    let logger: Logger
    public let privateDirectory: String
    /// False for `plugins`, which only inspects libraries and opens nothing.
    let openInstances: Bool

    public init(config: AgentConfig, logger: Logger, openInstances: Bool = true) throws {
        self.openInstances = openInstances
        self.state = NIOLockedValueBox(State(config: config))
        self.logger = logger
        self.privateDirectory = RuntimePaths.privateDirectory(for: config)
        try FileManager.default.createDirectory(atPath: privateDirectory, withIntermediateDirectories: true)
    }

    public var config: AgentConfig { state.withLockedValue { $0.config } }

    // MARK: - Leases

    public func lease(app: String) throws(SCIMError) -> Lease {
        let result: Result<Lease, SCIMError> = state.withLockedValue { s in
            guard let appConfig = s.config.apps[app] else { return .failure(.notFound("no app named \(app)")) }
            guard case .connector(let name, _) = appConfig.target else { return .failure(.notImplemented("app \(app) has no connector")) }
            guard let generation = s.slots[name]?.current else {
                return .failure(SCIMError(status: 503, detail: "connector \(name) for app \(app) is not loaded: no plugin in \(s.config.pluginsDirectory) provides it"))
            }
            guard let instance = generation.instances[app], let capabilities = generation.capabilities[app] else {
                let why = generation.appErrors[app] ?? "it was not opened for this app"
                return .failure(SCIMError(status: 503, detail: "connector \(name) for app \(app) is unavailable: \(why)"))
            }
            generation.inFlight += 1
            return .success(Lease(app: app, instance: instance, capabilities: capabilities, generation: generation, registry: self))
        }
        return try result.get()
    }

    func release(_ generation: Generation) {
        let retire = state.withLockedValue { _ -> Bool in
            generation.inFlight -= 1
            return generation.state == .draining && generation.inFlight == 0
        }
        if retire { finishDraining(generation) }
    }

    // MARK: - Loading

    /// Loads every `*.so` in the plugins directory. Failures are recorded, never fatal.
    public func loadAll() {
        let dir = config.pluginsDirectory
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".so") }.sorted()
        if files.isEmpty { logger.warning("no plugins found", metadata: ["plugins.directory": .string(dir)]) }
        for f in files { install(file: dir + "/" + f) }
    }

    /// Loads `file` as a new generation and makes it current for its connector name. If it
    /// fails, whatever served before keeps serving and the error is recorded.
    @discardableResult
    public func install(file: String) -> Bool {
        let config = self.config
        let library: PluginLibrary
        do {
            library = try PluginLibrary.load(file: file, privateDirectory: privateDirectory, configDirectory: config.directory, logger: logger)
        } catch {
            let reason = (error as? PluginLibrary.LoadError)?.reason ?? "\(error)"
            logger.error("plugin not loaded", metadata: ["plugin.file": .string(file), "error": .string(reason)])
            state.withLockedValue { s in
                if let name = s.slots.first(where: { $0.value.file == file })?.key {
                    s.slots[name]?.lastError = reason
                } else {
                    s.failedFiles[file] = reason
                }
            }
            return false
        }
        let (duplicateOf, previous) = state.withLockedValue { s -> (String?, Generation?) in
            if let slot = s.slots[library.name], slot.file != file, !slot.fileRemoved { return (slot.file, nil) }
            return (nil, s.slots[library.name]?.current)
        }
        if let duplicateOf {
            let reason = "connector \(library.name) is already provided by \(duplicateOf)"
            logger.error("plugin not loaded", metadata: ["plugin.file": .string(file), "error": .string(reason)])
            state.withLockedValue { $0.failedFiles[file] = reason }
            return false
        }
        if let previous, previous.library.contentHash == library.contentHash {
            return true  // same build: nothing to do
        }
        // Open an instance for every app that uses this connector.
        var instances: [String: ConnectorInstance] = [:]
        var capabilities: [String: Capabilities] = [:]
        var appErrors: [String: String] = [:]
        for app in config.apps.values.sorted(by: { $0.name < $1.name }) {
            guard openInstances, case .connector(let name, let settings) = app.target, name == library.name else { continue }
            do {
                let instance = try ConnectorInstance.open(library, app: app.name, settings: settings)
                if previous != nil { _ = try instance.test() }  // a replacement must prove itself first
                let described = try instance.describe()
                instances[app.name] = instance
                capabilities[app.name] = CapabilityDiscovery.capabilities(of: library, described: described, auth: app.auth)
            } catch let error as ConnectorInstance.OpenError {
                appErrors[app.name] = error.error.detail
            } catch let error as SCIMError {
                appErrors[app.name] = error.detail
            } catch {
                appErrors[app.name] = "\(error)"
            }
        }
        for (app, reason) in appErrors.sorted(by: { $0.key < $1.key }) {
            logger.error("connector could not open for app", metadata: ["app": .string(app), "connector.name": .string(library.name), "plugin.file": .string(file), "error": .string(reason)])
        }
        if previous != nil, !appErrors.isEmpty {
            // A bad replacement: keep the serving generation.
            for i in instances.values { i.close() }
            _ = library.unloadIfAllowed()
            let reason = appErrors.sorted(by: { $0.key < $1.key }).map { "app \($0.key): \($0.value)" }.joined(separator: "; ")
            state.withLockedValue { $0.slots[library.name]?.lastError = "replacement not loaded: \(reason)" }
            return false
        }
        let (generation, retireNow) = state.withLockedValue { s -> (Generation, Generation?) in
            let g = Generation(number: s.nextGeneration, library: library, instances: instances, capabilities: capabilities, appErrors: appErrors)
            s.nextGeneration += 1
            s.failedFiles[file] = nil
            var slot = s.slots[library.name] ?? Slot(file: file)
            var retire: Generation?
            if let old = slot.current {
                old.state = .draining
                if old.inFlight == 0 { retire = old } else { slot.draining.append(old) }
            }
            slot.file = file
            slot.current = g
            slot.fileRemoved = false
            slot.lastError = appErrors.isEmpty ? nil : appErrors.sorted(by: { $0.key < $1.key }).map { "app \($0.key): \($0.value)" }.joined(separator: "; ")
            s.slots[library.name] = slot
            return (g, retire)
        }
        logger.info("connector loaded", metadata: [
            "connector.name": .string(library.name), "connector.version": .string(library.version),
            "plugin.file": .string(file), "plugin.generation": .stringConvertible(generation.number),
            "apps": .string(instances.keys.sorted().joined(separator: ",")),
        ])
        if let retireNow { finishDraining(retireNow) }
        return true
    }

    func finishDraining(_ generation: Generation) {
        state.withLockedValue { s in
            generation.state = .retired
            s.slots[generation.library.name]?.draining.removeAll { $0 === generation }
        }
        let unloaded = generation.retire()
        logger.info("connector generation retired", metadata: [
            "connector.name": .string(generation.library.name), "plugin.generation": .stringConvertible(generation.number),
            "unloaded": .stringConvertible(unloaded),
        ])
    }

    /// Closes every instance (at shutdown).
    public func shutdown() {
        let generations = state.withLockedValue { s in s.slots.values.flatMap { [$0.current].compactMap { $0 } + $0.draining } }
        for g in generations { for i in g.instances.values { i.close() } }
    }

    // MARK: - Status

    public func status() -> [PluginStatus] {
        state.withLockedValue { s in
            var out: [PluginStatus] = []
            for (name, slot) in s.slots.sorted(by: { $0.key < $1.key }) {
                for g in [slot.current].compactMap({ $0 }) + slot.draining {
                    let apps = s.config.apps.values.compactMap { app -> String? in
                        if case .connector(let n, _) = app.target, n == name { return app.name }
                        return nil
                    }.sorted()
                    out.append(PluginStatus(
                        file: slot.file, connector: name, version: g.library.version, contentHash: g.library.contentHash,
                        generation: g.number, loadedAt: g.library.loadedAt,
                        state: g.state == .serving && slot.fileRemoved ? "serving (file removed)" : g.state.rawValue,
                        inFlight: g.inFlight, lastError: g === slot.current ? slot.lastError : nil, apps: apps))
                }
            }
            for (file, reason) in s.failedFiles.sorted(by: { $0.key < $1.key }) {
                out.append(PluginStatus(file: file, state: "failed", inFlight: 0, lastError: reason, apps: []))
            }
            return out
        }
    }

    /// The capabilities and any error of every app, for `check`.
    public func appReport(app: String) -> (capabilities: Capabilities?, error: String?) {
        do {
            let lease = try lease(app: app)
            defer { lease.release() }
            return (lease.capabilities, nil)
        } catch {
            return (nil, error.detail)
        }
    }
}

/// Where the agent keeps private copies of plugins and its status file: one directory per
/// configuration file, so `provisioning-agent plugins` finds the running agent's state.
public enum RuntimePaths {
    public static func privateDirectory(for config: AgentConfig) -> String {
        let base = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"] ?? NSTemporaryDirectory()
        let tag = ContentHash.fnv1a64(Data(config.file.utf8)).prefix(12)
        return (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/provisioning-agent-\(getuid())-\(tag)"
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
        return .object(o)
    }
}
