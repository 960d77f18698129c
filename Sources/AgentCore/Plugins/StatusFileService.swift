import Foundation
import Logging
import SCIMKit
import ServiceLifecycle

/// Publishes the registry's plugin status to a file beside the private plugin copies, so
/// `provisioning-agent plugins` can show a running agent's generations and in-flight calls
/// without opening a network endpoint. Checked four times a second, rewritten when it changed.
/// It also carries the deletion guards' counts, and takes `guard release` requests: a file
/// named by the app in `guard-release/` beside it.
public struct StatusFileService: Service {
    let registry: ConnectorRegistry
    let logger: Logger

    public init(registry: ConnectorRegistry, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    static func path(for config: AgentConfig) -> String { RuntimePaths.stateDirectory(for: config) + "/status.json" }
    public static func releaseDirectory(for config: AgentConfig) -> String { RuntimePaths.stateDirectory(for: config) + "/guard-release" }

    /// Makes the configured `runtimeDirectory` when it is missing; a directory the agent cannot
    /// write stops the start, naming the key.
    public static func prepare(config: AgentConfig) throws {
        guard let dir = config.runtimeDirectory else { return }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        } catch {
            throw AgentConfig.Invalid(problems: [AgentConfig.Problem(file: config.file, key: "runtimeDirectory", "cannot create \(dir): \(error.localizedDescription)")])
        }
        guard access(dir, W_OK | X_OK) == 0 else {
            throw AgentConfig.Invalid(problems: [AgentConfig.Problem(file: config.file, key: "runtimeDirectory", "\(dir) is not writable by this user (uid \(geteuid()))")])
        }
    }

    public func run() async throws {
        let path = Self.path(for: registry.config)
        var last = ""
        defer { try? FileManager.default.removeItem(atPath: path) }
        let releases = Self.releaseDirectory(for: registry.config)
        try? FileManager.default.createDirectory(atPath: releases, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            for app in (try? FileManager.default.contentsOfDirectory(atPath: releases)) ?? [] {
                registry.deletionGuard.release(app: app)
                try? FileManager.default.removeItem(atPath: releases + "/" + app)
                logger.warning("deletion guard released", metadata: ["app": .string(app)])
            }
            let text = JSON.object([
                "pid": .number(Double(getpid())), "plugins": .array(registry.status().map(\.json)),
                "guard": registry.deletionGuard.status(),
            ]).serialized()
            if text != last {
                let temp = path + ".tmp"
                if FileManager.default.createFile(atPath: temp, contents: Data(text.utf8)) { rename(temp, path) }
                last = text
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
        }
    }

    /// The status a running agent published, or nil when none is running.
    public static func readRunning(config: AgentConfig) -> [JSON]? {
        readRunningStatus(config: config)?["plugins"]?.arrayValue
    }

    /// The whole status a running agent published.
    public static func readRunningStatus(config: AgentConfig) -> JSON? {
        guard let data = FileManager.default.contents(atPath: path(for: config)),
            let json = try? JSON.parse(Array(data)), let pid = json["pid"]?.intValue,
            kill(pid_t(pid), 0) == 0 || errno == EPERM  // an agent of another user (the service's) is running
        else { return nil }
        return json
    }
}
