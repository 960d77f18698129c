import AgentCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWSClient
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SCIMKit
import ServiceLifecycle

/// The agent's side of `uplink:` (README, "Outbound only: the relay"): a connection dialled
/// out to each relay, over which the relay hands it requests. Each request is answered by the
/// same responder as the agent's own listener (middleware, routes, `SCIMService`), so
/// connectors, remotes, hot reload and audit work the same either way.
///
/// A connection that falls silent for two heartbeats is replaced: the new one is dialled
/// while the old one stays open, and the old one drains once the new one is welcomed. A lost
/// connection is redialled with jittered exponential backoff (0.5 s doubling to 30 s).
/// On shutdown every connection drains: it tells its relay to send nothing new, answers what
/// it has in flight (for up to 30 s), then closes.
public struct UplinkService: Service, CustomStringConvertible {
    let uplink: AgentConfig.Uplink
    let responder: RouterResponder<AgentRequestContext>
    let registry: ConnectorRegistry
    let logger: Logger

    init(uplink: AgentConfig.Uplink, responder: RouterResponder<AgentRequestContext>, registry: ConnectorRegistry, logger: Logger) {
        self.uplink = uplink
        self.responder = responder
        self.registry = registry
        self.logger = logger
    }

    /// What the service group logs: never the token.
    public var description: String { "UplinkService(\(uplink.urls.joined(separator: ", ")))" }

    public func run() async throws {
        let links = uplink.urls.map { RelayLink(url: $0, service: self) }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for link in links { group.addTask { await link.run() } }
            }
        } onGracefulShutdown: {
            for link in links { link.stop() }
        }
    }

    var proxySettings: WebSocketProxySettings? {
        guard let proxy = uplink.proxy else { return nil }
        var headers = HTTPFields()
        if let user = proxy.username {
            headers[.proxyAuthorization] = "Basic " + Data("\(user):\(proxy.password ?? "")".utf8).base64EncodedString()
        }
        return WebSocketProxySettings(host: proxy.host, port: proxy.port, type: .http(connectHeaders: headers), timeout: .seconds(10))
    }

    /// Answers one request a relay handed over.
    func answer(_ message: UplinkMessage) async -> UplinkMessage {
        let header = message.header
        let id = header["id"] ?? .null
        let fields = UplinkMessage.fields(header["headers"])
        let authority = header["authority"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        let head = HTTPRequest(
            method: HTTPRequest.Method(header["method"]?.stringValue ?? "GET") ?? .get, scheme: header["scheme"]?.stringValue ?? "https",
            authority: authority, path: header["path"]?.stringValue ?? "/", headerFields: fields)
        var requestLogger = logger
        requestLogger[metadataKey: "hb.request.id"] = .string(header["requestId"]?.stringValue ?? "uplink-\(id.intValue ?? 0)")
        let context = AgentRequestContext(
            relayed: .init(client: header["client"]?.stringValue, credential: header["credential"]?.stringValue ?? "relay", scheme: head.scheme ?? "https"),
            logger: requestLogger)
        let response: Response
        do {
            response = try await responder.respond(to: Request(head: head, body: RequestBody(buffer: message.body)), context: context)
        } catch {
            // Not reached through SCIMErrorMiddleware's catch-all; answered the same way.
            let body = SCIMError(status: 500, detail: "internal error").json.serializedBytes()
            return UplinkMessage(["type": "response", "id": id, "status": 500, "headers": [["Content-Type", "application/scim+json"]]], body: ByteBuffer(bytes: body))
        }
        let sink = BodySink()
        do { try await response.body.write(CollectingWriter(sink: sink)) } catch {
            logger.warning("uplink: a response body failed", metadata: ["error": .string("\(error)")])
        }
        return UplinkMessage(
            ["type": "response", "id": id, "status": .number(Double(response.status.code)), "headers": UplinkMessage.fields(response.headers)],
            body: sink.buffer.withLockedValue { $0 })
    }
}

/// Gathers a response body for the response message.
final class BodySink: Sendable {
    let buffer = NIOLockedValueBox(ByteBuffer())
}

struct CollectingWriter: ResponseBodyWriter {
    let sink: BodySink
    mutating func write(_ buffer: ByteBuffer) async throws {
        sink.buffer.withLockedValue { var b = buffer; $0.writeBuffer(&b) }
    }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// The connections to one relay: dials, replaces, backs off, drains.
final class RelayLink: Sendable {
    let url: String
    let service: UplinkService
    private let state = NIOLockedValueBox(State())

    struct State {
        var stopping = false
        var connections: [ObjectIdentifier: UplinkConnection] = [:]
    }

    init(url: String, service: UplinkService) {
        self.url = url
        self.service = service
    }

    var logger: Logger {
        var l = service.logger
        l[metadataKey: "relay"] = .string(url)
        return l
    }

    func stop() {
        let connections = state.withLockedValue { s in
            s.stopping = true
            return Array(s.connections.values)
        }
        for c in connections { c.drain(reason: "shutdown") }
    }

    var stopping: Bool { state.withLockedValue { $0.stopping } }

    func run() async {
        var backoff = 0.5
        await withDiscardingTaskGroup { group in
            while !stopping {
                let connection = UplinkConnection(link: self)
                state.withLockedValue { $0.connections[ObjectIdentifier(connection)] = connection }
                group.addTask {
                    await connection.run()
                    self.state.withLockedValue { _ = $0.connections.removeValue(forKey: ObjectIdentifier(connection)) }
                }
                switch await connection.outcome() {
                case .replace:
                    // Silent but maybe not dead: dial a successor now; this one drains when it is up.
                    logger.warning("uplink: no heartbeat from the relay; opening a new connection before dropping this one")
                    backoff = 0.5
                    continue
                case .closed(let wasUp):
                    if stopping { return }
                    if wasUp { backoff = 0.5 }
                    let delay = backoff * Double.random(in: 0.5...1.0)
                    backoff = min(backoff * 2, 30)
                    let until = ContinuousClock.now + .milliseconds(Int(delay * 1000))
                    while !stopping, ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(100)) }
                }
            }
        }
    }

    /// A connection was welcomed: the others (replaced ones) drain.
    func welcomed(_ connection: UplinkConnection) {
        let others = state.withLockedValue { s in s.connections.values.filter { $0 !== connection } }
        for c in others { c.drain(reason: "replaced") }
    }
}

/// One WebSocket connection to a relay.
final class UplinkConnection: Sendable {
    enum Outcome: Sendable {
        /// Unhealthy: the link dials a successor while this one stays until it drains or dies.
        case replace
        case closed(wasUp: Bool)
    }

    struct State {
        var welcomed = false
        var draining: String?
        /// This side sent the close frame.
        var closing = false
        var inFlight = 0
        var lastReceived = ContinuousClock.now
        var announced: [String] = []
        var outcome: Outcome?
        var waiter: CheckedContinuation<Outcome, Never>?
    }

    let link: RelayLink
    private let state = NIOLockedValueBox(State())

    init(link: RelayLink) { self.link = link }

    /// Ends the connection; `drained` when it ends by draining (a normal close).
    struct Ended: Error {
        var drained = false
    }

    /// Returns when the connection closes, or earlier when it should be replaced.
    func outcome() async -> Outcome {
        await withCheckedContinuation { c in
            let ready = state.withLockedValue { s -> Outcome? in
                if let o = s.outcome { return o }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    private func report(_ outcome: Outcome) {
        let waiter = state.withLockedValue { s -> CheckedContinuation<Outcome, Never>? in
            guard s.outcome == nil else { return nil }
            s.outcome = outcome
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: outcome)
    }

    func drain(reason: String) {
        state.withLockedValue { s in if s.draining == nil { s.draining = reason } }
    }

    func run() async {
        let service = link.service
        // A relay that does not answer the close handshake within 3 s is cut off.
        var configuration = WebSocketClientConfiguration(maxFrameSize: UplinkLimits.maxMessage, closeTimeout: .seconds(3))
        configuration.additionalHeaders[.authorization] = "Bearer \(service.uplink.token)"
        configuration.additionalHeaders[HTTPField.Name("X-Agent-Name")!] = service.uplink.name
        let logger = link.logger
        let client: WebSocketClient
        if let proxy = service.proxySettings {
            client = WebSocketClient(
                url: link.url, configuration: configuration, tlsConfiguration: service.uplink.tlsConfiguration, proxySettings: proxy, logger: logger,
                handler: { inbound, outbound, _ in try await self.serve(inbound, outbound) })
        } else {
            client = WebSocketClient(
                url: link.url, configuration: configuration, tlsConfiguration: service.uplink.tlsConfiguration, logger: logger,
                handler: { inbound, outbound, _ in try await self.serve(inbound, outbound) })
        }
        do {
            // Detached from the service group's graceful shutdown, which would close the
            // socket at once: this connection drains first (`drain`).
            _ = try await Task.detached { try await client.run() }.value
        } catch is Ended {
        } catch let error as WebSocketClientError where error == .webSocketUpgradeFailed {
            // The upgrade says only that it failed; the relay's answer to a plain request says why.
            let answer = await UplinkProbe.ask(link.url, uplink: service.uplink, apps: currentApps)
            logger.error("uplink: cannot connect to the relay: the WebSocket upgrade was refused", metadata: ["reason": .string(answer.detail)])
        } catch {
            logger.error("uplink: cannot connect to the relay", metadata: ["error": .string(String(describing: error))])
        }
        let wasUp = state.withLockedValue { $0.welcomed }
        if wasUp, link.stopping { logger.info("uplink: connection to the relay closed on shutdown") } else if wasUp { logger.warning("uplink: connection to the relay closed") }
        report(.closed(wasUp: wasUp))
    }

    private func send(_ message: UplinkMessage, _ outbound: WebSocketOutboundWriter) async throws {
        try await outbound.write(.binary(message.encoded()))
    }

    private var currentApps: [String] { link.service.registry.config.appNames }

    private func serve(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter) async throws {
        let service = link.service
        let apps = currentApps
        state.withLockedValue { $0.announced = apps }
        try await send(UplinkMessage(["type": "hello", "name": .string(service.uplink.name), "apps": .array(apps.map(JSON.string)), "version": "0.1.0"]), outbound)
        do {
            // Both loops are child tasks, so that either ending cancels the other (a task
            // group's body is not cancelled with it).
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.watch(outbound) }
                group.addTask { try await self.read(inbound, outbound) }
            }
        } catch let ended as Ended where ended.drained {
            return  // a normal close
        }
    }

    private func read(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter) async throws {
        let service = link.service
        try await withThrowingDiscardingTaskGroup { requests in
            for try await message in inbound.messages(maxSize: UplinkLimits.maxMessage) {
                guard case .binary(let buffer) = message else { continue }
                state.withLockedValue { $0.lastReceived = .now }
                let m: UplinkMessage
                do { m = try UplinkMessage.decode(buffer) } catch {
                    link.logger.error("uplink: the relay sent a malformed message; closing the connection", metadata: ["error": .string(String(describing: error))])
                    throw Ended()
                }
                switch m.type {
                case "request":
                    state.withLockedValue { $0.inFlight += 1 }
                    requests.addTask {
                        let answer = await service.answer(m)
                        defer { self.state.withLockedValue { $0.inFlight -= 1 } }
                        try? await self.send(answer, outbound)
                    }
                case "ping":
                    try await send(UplinkMessage(["type": "pong"]), outbound)
                case "welcome":
                    welcomed(m)
                case "pong":
                    break
                default:
                    link.logger.debug("uplink: ignored a message", metadata: ["type": .string(m.type)])
                }
            }
            throw Ended(drained: state.withLockedValue { $0.closing })  // closed: by the relay, or answering our close
        }
    }

    private func welcomed(_ m: UplinkMessage) {
        state.withLockedValue { $0.welcomed = true }
        let accepted = m.header["apps"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let unknown = m.header["unknown"]?.arrayValue?.compactMap(\.stringValue) ?? []
        link.logger.info("uplink: connected to the relay", metadata: [
            "relay.name": .string(m.header["relay"]?.stringValue ?? "?"), "apps": .string(accepted.joined(separator: ",")),
        ])
        if !unknown.isEmpty {
            link.logger.error("uplink: the relay does not know these apps and sends no requests for them; add them to its configuration", metadata: [
                "apps": .string(unknown.joined(separator: ",")),
            ])
        }
        link.welcomed(self)
    }

    /// Heartbeats, app announcements, silence and draining; throws `Ended` to close.
    private func watch(_ outbound: WebSocketOutboundWriter) async throws {
        let period = Duration.milliseconds(Int(link.service.uplink.heartbeat * 1000))
        var lastPing = ContinuousClock.now
        var replaced = false
        var drainStarted: ContinuousClock.Instant?
        while true {
            try await Task.sleep(for: .milliseconds(min(100, Int(link.service.uplink.heartbeat * 250))))
            let now = ContinuousClock.now
            let (draining, inFlight, lastReceived, announced) = state.withLockedValue { ($0.draining, $0.inFlight, $0.lastReceived, $0.announced) }
            if let reason = draining {
                if drainStarted == nil {
                    drainStarted = now
                    link.logger.info("uplink: draining the connection", metadata: ["reason": .string(reason), "inFlight": .stringConvertible(inFlight)])
                    try? await send(UplinkMessage(["type": "draining"]), outbound)
                }
                if inFlight == 0 || now - drainStarted! > .seconds(30) {
                    // The close handshake ends the read loop; cut off if the relay does not answer it.
                    state.withLockedValue { $0.closing = true }
                    try? await outbound.close(.normalClosure, reason: "draining")
                    try await Task.sleep(for: .seconds(3))
                    throw Ended(drained: true)
                }
                continue
            }
            if now - lastReceived > period * 3 {
                link.logger.error("uplink: the relay has been silent for three heartbeats; dropping the connection")
                throw Ended()
            }
            if !replaced, now - lastReceived > period * 2 {
                replaced = true
                report(.replace)
            }
            if now - lastPing >= period {
                lastPing = now
                try await send(UplinkMessage(["type": "ping"]), outbound)
                let apps = currentApps
                if apps != announced {
                    state.withLockedValue { $0.announced = apps }
                    try await send(UplinkMessage(["type": "apps", "apps": .array(apps.map(JSON.string))]), outbound)
                }
            }
        }
    }
}

enum UplinkLimits {
    /// The largest message either side accepts: a response with a large group's members.
    static let maxMessage = 64 << 20
}
