import AsyncHTTPClient
import NIOConcurrencyHelpers

/// The pooled HTTP clients of remote apps: one per connect timeout in use (AsyncHTTPClient
/// sets the connect timeout per client, not per request), so each app's `timeouts.connect`
/// holds while apps with the same value share connections. Clients live until `shutdown`:
/// a configuration reload that drops an app does not tear down a client another app may use.
public final class RemoteClients: Sendable {
    private let clients = NIOLockedValueBox([Int64: HTTPClient]())

    public init() {}

    func client(connectTimeout seconds: Double) -> HTTPClient {
        let ms = max(1, Int64((seconds * 1000).rounded()))
        return clients.withLockedValue { clients in
            if let c = clients[ms] { return c }
            let c = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(timeout: .init(connect: .milliseconds(ms))))
            clients[ms] = c
            return c
        }
    }

    public func shutdown() async {
        let all = clients.withLockedValue { c in defer { c = [:] }; return Array(c.values) }
        for c in all { try? await c.shutdown() }
    }
}
