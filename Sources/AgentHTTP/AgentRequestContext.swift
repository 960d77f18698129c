import Hummingbird
import Logging

/// Per-request state: the app the request is for, once authentication has found it.
public struct AgentRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    var app: String?

    public init(source: Source) {
        coreContext = .init(source: source)
    }
}
