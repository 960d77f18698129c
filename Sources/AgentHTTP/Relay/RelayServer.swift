import AgentCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SCIMKit
import ServiceLifecycle

/// `provisioning-agent relay` (README, "Outbound only: the relay"): outside the firewall, it
/// serves the agents' SCIM URLs with each app's client authentication and hands every request
/// to a connected agent serving the app, over the connection the agent dialled (`/uplink`).
public enum RelayServer {
    public static func application(config: RelayConfig, logger: Logger) throws -> some ApplicationProtocol {
        let directory = AgentDirectory(config: config, logger: logger)
        let relay = RelayRoutes(config: config, directory: directory, logger: logger)
        let router = Router(context: AgentRequestContext.self)
        router.add(middleware: AppPathMiddleware())
        if logger.logLevel <= .info { router.add(middleware: RequestLogMiddleware()) }
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: SCIMErrorMiddleware())
        router.get("healthz") { request, context in relay.health(detailed: relay.isLoopbackClient(request, context)) }
        router.group("agents").add(middleware: RelayAdminMiddleware(relay: relay, endpoint: "/agents"))
            .get { _, _ in SCIMResponse.json(directory.listing) }
        router.group("metrics").add(middleware: RelayAdminMiddleware(relay: relay, endpoint: "/metrics"))
            .get { _, _ in
                RelayMetrics.refresh(agentsPerApp: directory.agentsPerApp, inFlight: relay.inFlight.withLockedValue { $0 })
                return AgentServer.prometheusText()
            }
        // Reached when an upgrade to /uplink was refused (or was not asked for).
        router.get("uplink") { request, context in try await relay.refuseUplink(request, context) }
        for base in ["apps/:app/scim/v2", "apps/:app/scim/v1"] {
            for path in [base, base + "/**"] {
                for method in [HTTPRequest.Method.get, .post, .put, .patch, .delete] {
                    router.on(RouterPath(path), method: method) { request, context in try await relay.forward(request, context) }
                }
            }
        }

        let uplinks = Router(context: UplinkRequestContext.self)
        uplinks.ws("uplink") { request, context in
            relay.agentName(request, address: relay.client(request, peer: context.address)) == nil ? .dontUpgrade : .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let name = relay.agentName(context.request, address: nil) ?? "?"
            await directory.serve(name: name, address: context.requestContext.address, inbound: inbound, outbound: outbound)
        }
        let wsResponder = uplinks.buildResponder()
        let upgrade = HTTP1WebSocketUpgradeChannel.Configuration(
            http1: .init(idleTimeout: .seconds(120)),
            // Heartbeats are the relay's own messages (`AgentDirectory`); pings are answered.
            ws: .init(maxFrameSize: UplinkLimits.maxMessage, autoPing: .disabled, closeTimeout: .seconds(1)))
        let limiter = ConnectionLimiter(limit: config.limits.maxClientConnections, logger: logger)
        let tls = try config.tls.map { try AgentServer.tlsConfiguration($0) }
        let server = HTTPServerBuilder { responder in
            let http = HTTP1WebSocketUpgradeChannel(responder: responder, webSocketResponder: wsResponder, configuration: upgrade)
            if let tls { return LimitedChildChannel(base: try TLSChannel(http, tlsConfiguration: tls), limiter: limiter) }
            return LimitedChildChannel(base: http, limiter: limiter)
        }
        return Application(
            router: router, server: server,
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "provisioning-agent-relay"),
            onServerRunning: { channel in
                logger.info("relay serving", metadata: [
                    "listen": .string(channel.localAddress?.description ?? "?"), "apps": .string(config.appNames.joined(separator: ",")),
                ])
            },
            logger: logger)
    }
}

/// The context of an agent's upgrade request to `/uplink`.
struct UplinkRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>
    let address: String

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        address = source.channel.remoteAddress?.ipAddress ?? "?"
    }
}

/// The relay's routes: client requests in, handed to agents; the uplink's authentication.
struct RelayRoutes: Sendable {
    let config: RelayConfig
    let directory: AgentDirectory
    let logger: Logger
    let throttle = AuthThrottle()
    let inFlight = NIOLockedValueBox([String: Int]())

    /// `degraded` when an app has no agent. The apps and their agents only to loopback clients:
    /// the relay faces the internet, and a load balancer needs only the status.
    func health(detailed: Bool) -> Response {
        let perApp = directory.agentsPerApp
        let status = perApp.values.contains(0) ? "degraded" : "ok"
        guard detailed else { return SCIMResponse.json(["status": .string(status), "role": "relay"]) }
        return SCIMResponse.json([
            "status": .string(status), "role": "relay",
            "apps": .object(JSONObject(perApp.keys.sorted().map { .init(key: $0, value: ["agents": .number(Double(perApp[$0]!))]) })),
        ])
    }

    /// The agent an upgrade request authenticates as, or nil (logged, without the token). A
    /// refused upgrade is answered by `refuseUplink`, which counts the failure in the throttle.
    func agentName(_ request: Request, address: String?) -> String? {
        let claimed = request.headers[Self.agentNameField]
        if let address, case .locked = throttle.verdict(Self.agentKey(address, request)) { return nil }
        guard let name = directory.authenticate(name: claimed, bearer: request.headers[.authorization]) else { return nil }
        if let address { throttle.succeeded(Self.agentKey(address, request)) }
        if address != nil, directory.connectionCount >= config.limits.maxAgentConnections {
            logger.error("relay: refused an agent connection: relay.limits.maxAgentConnections reached", metadata: ["agent": .string(name)])
            return nil
        }
        return name
    }

    /// `/uplink` without a WebSocket upgrade: why an agent's upgrade was refused, or, for an agent
    /// it accepts, a probe (`check`, `UplinkProbe`): which of `?apps=a,b` this relay serves.
    func refuseUplink(_ request: Request, _ context: AgentRequestContext) async throws -> Response {
        let name = try await throttled(Self.agentKey(client(request, context), request), for: "/uplink",
                                       failure: "relay: refused an agent connection: unknown agent or wrong token") {
            guard let name = directory.authenticate(name: request.headers[Self.agentNameField], bearer: request.headers[.authorization]) else {
                throw SCIMErrorResponse(error: SCIMError(status: 401, detail: "unknown agent or wrong token"), extraHeaders: [.wwwAuthenticate: "Bearer realm=\"uplink\""])
            }
            return name
        }
        if directory.connectionCount >= config.limits.maxAgentConnections {
            throw SCIMErrorResponse(error: SCIMError(status: 503, detail: "the relay holds relay.limits.maxAgentConnections connections already"))
        }
        let announced = Set((request.uri.queryParameters["apps"].map(String.init) ?? "").split(separator: ",").map(String.init).prefix(1000))
        return SCIMResponse.json([
            "relay": .string(ProcessInfo.processInfo.hostName), "agent": .string(name),
            "apps": .array(announced.filter { config.apps[$0] != nil }.sorted().map(JSON.string)),
            "unknown": .array(announced.filter { config.apps[$0] == nil }.sorted().map(JSON.string)),
        ])
    }

    // MARK: client requests

    func forward(_ request: Request, _ context: AgentRequestContext) async throws -> Response {
        let app = context.app
        guard let auth = config.apps[app] else { throw SCIMErrorResponse(error: .notFound("no app named \(app)")) }
        let credential = try await authenticate(auth, request, context, realm: app, what: "app \(app)")
        try admit(app)
        defer { inFlight.withLockedValue { $0[app, default: 1] -= 1 } }
        let body = try await request.body.collect(upTo: config.limits.maxBodySize)
        var fields = HTTPFields()
        for field in request.headers where !Self.hopByHop.contains(field.name) && field.name != .authorization {
            if case .header(let name, _) = auth, field.name.rawName.caselessEquals(name) { continue }
            fields.append(field)
        }
        let message = UplinkMessage(
            [
                "type": "request", "method": .string(request.method.rawValue), "path": .string(request.uri.description),
                "headers": UplinkMessage.fields(fields), "authority": .string(request.head.authority ?? ""), "scheme": .string(config.tls == nil ? "http" : "https"),
                "client": .string(client(request, context)), "credential": .string(credential), "requestId": .string(context.id),
            ], body: body)
        let answer = try await Failover(directory: directory, app: app, timeout: config.limits.requestTimeout, logger: context.logger)
            .send(message, method: request.method, path: request.uri.path, body: body)
        var headers = HTTPFields()
        for field in UplinkMessage.fields(answer.header["headers"]) where !Self.hopByHop.contains(field.name) && field.name != .contentLength {
            headers.append(field)
        }
        return Response(status: .init(code: answer.header["status"]?.intValue ?? 502), headers: headers, body: .init(byteBuffer: answer.body))
    }

    static let hopByHop: Set<HTTPField.Name> = [
        .connection, .transferEncoding, .upgrade, .te, .trailer, .proxyAuthorization, .proxyAuthenticate,
        HTTPField.Name("Keep-Alive")!, HTTPField.Name("Proxy-Connection")!,
    ]

    /// An app's credential (or `relay.admin`'s), behind the throttle; returns which credential it was.
    func authenticate(_ auth: AgentConfig.Auth, _ request: Request, _ context: AgentRequestContext, realm: String, what: String) async throws -> String {
        let key = AuthThrottle.Key(address: client(request, context), credential: Self.presented(auth, request))
        return try await throttled(key, for: what) { try AuthenticationMiddleware.check(auth, request, realm: realm, what: what) }
    }

    /// Runs a credential check behind the throttle: a locked key is refused with 429 before it
    /// runs; a failure is counted, logged without the secret, and its 401 held back.
    func throttled<T>(
        _ key: AuthThrottle.Key, for what: String, failure: Logger.Message = "relay: failed client authentication", _ check: () throws -> T
    ) async throws -> T {
        if case .locked(let seconds) = throttle.verdict(key) {
            RelayMetrics.authenticationFailure(for: what, status: 429)
            var error = SCIMError(status: 429, detail: "too many failed authentications from this address; retry later")
            error.retryAfter = seconds
            throw SCIMErrorResponse(error: error)
        }
        do {
            let result = try check()
            throttle.succeeded(key)
            return result
        } catch {
            let delay = throttle.failed(key)
            RelayMetrics.authenticationFailure(for: what, status: 401)
            logger.warning(failure, metadata: [
                "for": .string(what), "address": .string(key.address), "credential": .string(key.credential),
            ])
            if delay > .zero { try await Task.sleep(for: delay) }
            throw error
        }
    }

    /// The client's address: the peer's, or behind a proxy in `relay.trustedProxies` the one it
    /// forwarded (`X-Forwarded-For`).
    func client(_ request: Request, _ context: AgentRequestContext) -> String {
        client(request, peer: context.clientAddress ?? "?")
    }

    func client(_ request: Request, peer: String) -> String {
        guard !config.trustedProxies.isEmpty else { return peer }
        return config.trustedProxies.client(peer: peer, forwardedFor: request.headers[values: Self.forwardedFor])
    }

    static let agentNameField = HTTPField.Name("X-Agent-Name")!

    /// An agent's token guesses are counted per address and claimed agent name.
    static func agentKey(_ address: String, _ request: Request) -> AuthThrottle.Key {
        AuthThrottle.Key(address: address, credential: "agent " + (request.headers[agentNameField] ?? "?").prefix(64))
    }

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    func isLoopbackClient(_ request: Request, _ context: AgentRequestContext) -> Bool {
        context.isLoopbackClient && AgentRequestContext.isLoopback(client(request, context))
    }

    /// Who a request claims to be, for the throttle: the basic username, or the header's name.
    static func presented(_ auth: AgentConfig.Auth, _ request: Request) -> String {
        if let decoded = request.headers[.authorization].flatMap(AuthenticationMiddleware.basicCredentials),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":") {
            return "basic " + text[..<colon].prefix(64)
        }
        if case .header(let name, _) = auth { return "header " + name }
        return "token"
    }

    /// Counts the request in its app's in-flight requests, or refuses it with 429.
    func admit(_ app: String) throws {
        let admitted = inFlight.withLockedValue { counts -> Bool in
            guard counts[app, default: 0] < config.limits.maxInFlightPerApp else { return false }
            counts[app, default: 0] += 1
            return true
        }
        guard admitted else {
            var error = SCIMError(status: 429, detail: "app \(app) has relay.limits.maxInFlightPerApp (\(config.limits.maxInFlightPerApp)) requests in flight")
            error.retryAfter = 1
            throw SCIMErrorResponse(error: error)
        }
    }
}

/// `/agents` and `/metrics`: behind `relay.admin`, checked and throttled as the apps'
/// credentials are, or for loopback clients only when it is not set.
struct RelayAdminMiddleware: RouterMiddleware {
    let relay: RelayRoutes
    let endpoint: String

    func handle(_ request: Request, context: AgentRequestContext, next: (Request, AgentRequestContext) async throws -> Response) async throws -> Response {
        if let admin = relay.config.admin {
            _ = try await relay.authenticate(admin, request, context, realm: "relay admin", what: endpoint)
        } else if !relay.isLoopbackClient(request, context) {
            throw SCIMErrorResponse(error: SCIMError(status: 403, detail: "\(endpoint) answers loopback clients only unless relay.admin sets a credential"))
        }
        return try await next(request, context)
    }
}

/// Closes client connections beyond `relay.limits.maxClientConnections` as they are accepted.
final class ConnectionLimiter: Sendable {
    let limit: Int
    let logger: Logger
    let open = NIOLockedValueBox(0)
    let lastWarning = NIOLockedValueBox(ContinuousClock.now - .seconds(60))

    init(limit: Int, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    func admit(_ channel: any Channel) -> Bool {
        let admitted = open.withLockedValue { n -> Bool in
            guard n < limit else { return false }
            n += 1
            return true
        }
        guard admitted else {
            let warn = lastWarning.withLockedValue { last -> Bool in
                guard ContinuousClock.now - last > .seconds(10) else { return false }
                last = .now
                return true
            }
            if warn { logger.warning("relay: closing new connections: relay.limits.maxClientConnections (\(limit)) reached") }
            return false
        }
        channel.closeFuture.whenComplete { _ in self.open.withLockedValue { $0 -= 1 } }
        return true
    }
}

struct ConnectionLimitReached: Error {}

struct LimitedChildChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let limiter: ConnectionLimiter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        guard limiter.admit(channel) else {
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(ConnectionLimitReached())
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
