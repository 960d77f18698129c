import Foundation
import SCIMKit

/// One loaded build of a connector and the instances it opened for its apps. Requests lease
/// the generation they start on; a replaced generation drains, then is retired (DESIGN.md).
public final class Generation: Sendable {
    public let number: Int
    public let build: PluginBuild
    public let instances: [String: any AppInstance]
    public let capabilities: [String: Capabilities]
    /// Apps whose instance failed to open on this generation, with the reason.
    public let appErrors: [String: String]

    init(number: Int, build: PluginBuild, instances: [String: any AppInstance], capabilities: [String: Capabilities], appErrors: [String: String]) {
        self.number = number
        self.build = build
        self.instances = instances
        self.capabilities = capabilities
        self.appErrors = appErrors
    }

    func closeInstances() {
        for instance in instances.values { instance.close() }
    }

    /// The child processes of this generation's isolated apps.
    var processes: [JSON] {
        instances.values.compactMap { ($0 as? IsolatedConnector)?.processStatus }.sorted { ($0["app"]?.stringValue ?? "") < ($1["app"]?.stringValue ?? "") }
    }
}

/// One app's open instance of a connector: in the agent (`ConnectorInstance`) or in a child
/// process (`IsolatedConnector`).
public protocol AppInstance: Target {
    func close()
}

extension ConnectorInstance: AppInstance {}
extension IsolatedConnector: AppInstance {}

/// One build of a plugin file: its descriptor's facts, its private copy, and the library
/// loaded into the agent when an in-process app uses it (nil when only isolated apps do:
/// then only their child processes load it, and its code never maps into the agent).
public final class PluginBuild: Sendable {
    public let name: String
    public let version: String
    public let sourceFile: String
    public let contentHash: String
    public let privatePath: String
    public let loadedAt: Date
    public let library: PluginLibrary?

    init(library: PluginLibrary) {
        self.name = library.name
        self.version = library.version
        self.sourceFile = library.sourceFile
        self.contentHash = library.contentHash
        self.privatePath = library.privatePath
        self.loadedAt = library.loadedAt
        self.library = library
    }

    init(name: String, version: String, sourceFile: String, contentHash: String, privatePath: String) {
        self.name = name
        self.version = version
        self.sourceFile = sourceFile
        self.contentHash = contentHash
        self.privatePath = privatePath
        self.loadedAt = Date()
        self.library = nil
    }

    func unloadIfAllowed() -> Bool { library?.unloadIfAllowed() ?? false }
}

/// What a request holds while it runs: the instance and capabilities of the generation it
/// started on. Release it exactly once.
public struct Lease: Sendable {
    public let app: String
    public let target: any Target
    public let capabilities: Capabilities
    public let unknownAttributes: AgentConfig.UnknownAttributes
    public var guardLimits = AgentConfig.GuardLimits()
    /// nil for a remote app (nothing to drain).
    let generation: Generation?
    let registry: ConnectorRegistry
    /// The target when it is a remote app's (its first discovery may still be running).
    var remote: RemoteTarget? = nil

    /// The plugin generation serving it; nil for a remote app.
    public var generationNumber: Int? { generation?.number }

    public func release() { if let generation { registry.release(generation) } }
}
