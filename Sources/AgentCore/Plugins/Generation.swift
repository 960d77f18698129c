import Foundation
import SCIMKit

/// One loaded build of a connector and the instances it opened for its apps. Requests lease
/// the generation they start on; a replaced generation drains, then is retired (DESIGN.md).
public final class Generation: Sendable {
    public let number: Int
    public let library: PluginLibrary
    public let instances: [String: ConnectorInstance]
    public let capabilities: [String: Capabilities]
    /// Apps whose instance failed to open on this generation, with the reason.
    public let appErrors: [String: String]

    init(number: Int, library: PluginLibrary, instances: [String: ConnectorInstance], capabilities: [String: Capabilities], appErrors: [String: String]) {
        self.number = number
        self.library = library
        self.instances = instances
        self.capabilities = capabilities
        self.appErrors = appErrors
    }

    func closeInstances() {
        for instance in instances.values { instance.close() }
    }
}

/// What a request holds while it runs: the instance and capabilities of the generation it
/// started on. Release it exactly once.
public struct Lease: Sendable {
    public let app: String
    public let target: any Target
    public let capabilities: Capabilities
    public let unknownAttributes: AgentConfig.UnknownAttributes
    /// nil for a remote app (nothing to drain).
    let generation: Generation?
    let registry: ConnectorRegistry
    /// The target when it is a remote app's (its first discovery may still be running).
    var remote: RemoteTarget? = nil

    public func release() { if let generation { registry.release(generation) } }
}
