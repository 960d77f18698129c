import AgentCore
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import SCIMKit

/// Asks a relay whether it would accept this agent and which of its apps it serves, with a
/// plain request to `/uplink` over the uplink's own TLS settings, proxy, name and token. It is
/// what `check` prints for each relay, and what the agent logs when a relay refuses its
/// WebSocket upgrade (the upgrade itself only says that it failed).
public enum UplinkProbe {
    public struct Answer: Sendable {
        public var ok: Bool
        /// One line: what the relay said, or why it could not be asked.
        public var detail: String
        /// Apps this agent serves that the relay has no configuration for.
        public var unknown: [String] = []
    }

    /// `url` is the uplink's `wss://…/uplink` (or `ws://` to loopback).
    public static func ask(_ url: String, uplink: AgentConfig.Uplink, apps: [String]) async -> Answer {
        let http = url.hasPrefix("wss://") ? "https://" + url.dropFirst(6) : url.hasPrefix("ws://") ? "http://" + url.dropFirst(5) : url
        var configuration = HTTPClient.Configuration(tlsConfiguration: uplink.tlsConfiguration, timeout: .init(connect: .seconds(10), read: .seconds(10)))
        if let proxy = uplink.proxy {
            configuration.proxy = .server(host: proxy.host, port: proxy.port, authorization: proxy.username.map { .basic(username: $0, password: proxy.password ?? "") })
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let answer: Answer
        do {
            // App names are letters, digits, '-' and '_' (AgentConfig): nothing to escape.
            var request = HTTPClientRequest(url: http + "?apps=" + apps.joined(separator: ","))
            request.headers.add(name: "Authorization", value: "Bearer \(uplink.token)")
            request.headers.add(name: "X-Agent-Name", value: uplink.name)
            let response = try await client.execute(request, timeout: .seconds(15))
            let body = try? JSON.parse(try await response.body.collect(upTo: 1 << 20).readableBytesView)
            answer = read(status: Int(response.status.code), body)
        } catch {
            answer = Answer(ok: false, detail: "cannot reach the relay: \(error)")
        }
        try? await client.shutdown()
        return answer
    }

    static func read(status: Int, _ body: JSON?) -> Answer {
        guard status == 200, let body, body["agent"] != nil else {
            if let detail = body?["detail"]?.stringValue { return Answer(ok: false, detail: "the relay refused this agent: \(status) \(detail)") }
            return Answer(ok: false, detail: "\(status) from /uplink: is this URL a provisioning-agent relay?")
        }
        let apps = body["apps"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let unknown = body["unknown"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var detail = "accepted as \(body["agent"]?.stringValue ?? "?") by relay \(body["relay"]?.stringValue ?? "?"); serves \(apps.isEmpty ? "none of its apps" : apps.joined(separator: ", "))"
        if !unknown.isEmpty { detail += "; has no configuration for \(unknown.joined(separator: ", ")) (add them to the relay's apps:)" }
        return Answer(ok: unknown.isEmpty, detail: detail, unknown: unknown)
    }
}

extension AgentConfig.Uplink {
    /// TLS to the relays: verified always (against `caFile`, else the system's CAs), 1.2 at least.
    var tlsConfiguration: TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        // After the WebSocket close handshake nothing is left to read; waiting the default
        // for the relay's close_notify held every agent's shutdown for 2 s.
        tls.shutdownTimeout = .milliseconds(250)
        if let caFile { tls.trustRoots = .file(caFile) }
        return tls
    }
}
