import AgentCore
import Hummingbird
import Prometheus
import HummingbirdCore
import HummingbirdTLS
import ServiceLifecycle
import Logging
import NIOCore
import SCIMKit

/// The HTTP front: routes, authentication, request logging, TLS.
///
/// Every request passes `AppPathMiddleware` (which app, which SCIM dialect), the request log
/// and `SCIMErrorMiddleware` (every error as a SCIM error in that dialect); the app route
/// groups add `AuthenticationMiddleware` before their routes.
public enum AgentServer {
    /// `rates` samples the request counters for `/status` (`application` runs it as a service);
    /// without it the page samples them when it is drawn.
    static func router(service: SCIMService, config: AgentConfig, logger: Logger, rates: RequestRates? = nil) -> Router<AgentRequestContext> {
        let router = Router(context: AgentRequestContext.self)
        let failures = RecentFailures()
        router.add(middleware: AppPathMiddleware())
        // Request lines are logged at info; below that level nothing is added to a request.
        if logger.logLevel <= .info { router.add(middleware: RequestLogMiddleware()) }
        if config.server.metrics { router.add(middleware: MetricsMiddleware()) }
        router.add(middleware: SCIMErrorMiddleware(failures: failures))
        // Prometheus text format, on the agent's own listener unless server.metrics.listen
        // names another (README, "Metrics").
        if config.server.metrics, config.server.metricsListen == nil { addMetrics(to: router, service: service, config: config) }
        let page = StatusPage(
            service: service, health: HealthCheck(registry: service.registry, failures: failures),
            rates: config.server.metrics ? rates ?? RequestRates() : nil)
        router.group("status").add(middleware: EndpointAccessMiddleware(endpoint: "/status", auth: config.server.statusAuth, loopbackOnly: true))
            .get { _, _ in await page.response }
        router.get("healthz") { _, _ in SCIMResponse.json(await health(service)) }
        // Kubernetes-style probes: alive while it answers; ready once every app's target is
        // known (plugins are loaded before the server starts; remotes after their first discovery).
        router.get("livez") { _, _ in SCIMResponse.json(["status": "ok"]) }
        router.get("readyz") { _, _ in
            let waiting = service.registry.appsAwaitingDiscovery
            guard waiting.isEmpty else {
                return SCIMResponse.json(["status": "not ready", "waitingFor": .array(waiting.map(JSON.string))], status: .serviceUnavailable)
            }
            return SCIMResponse.json(["status": "ready"])
        }
        let authentication = AuthenticationMiddleware(registry: service.registry)
        let routes = SCIMRoutes(service: service, maxBodySize: config.server.maxBodySize, scheme: config.server.tls == nil ? "http" : "https")
        routes.register(on: router.group("apps/:app/scim/v2").add(middleware: authentication))
        SCIM11Routes(routes: routes).register(on: router.group("apps/:app/scim/v1").add(middleware: authentication))
        return router
    }

    static func addMetrics(to router: Router<AgentRequestContext>, service: SCIMService, config: AgentConfig) {
        router.group("metrics").add(middleware: EndpointAccessMiddleware(endpoint: "/metrics", auth: config.server.metricsAuth, loopbackOnly: false))
            .get { _, _ in
                AgentMetrics.refreshGauges(service.registry)
                return prometheusText()
            }
    }

    /// Every metric, in Prometheus text format.
    static func prometheusText() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: PrometheusMetricsFactory.defaultRegistry.emitToBuffer())))
    }

    static func health(_ service: SCIMService) async -> JSON {
        let config = service.registry.config
        var apps = JSONObject()
        var healthy = true
        let guards = service.registry.deletionGuard.status()
        for name in config.appNames {
            do throws(SCIMError) {
                apps[name] = try await service.registry.withLease(app: name, awaitingDiscovery: false) { lease throws(SCIMError) -> JSON in
                    var entry: JSONObject = ["status": "serving", "connector": .string(lease.target.name), "version": .string(lease.target.version)]
                    if let remote = lease.target as? RemoteTarget { entry["circuitBreaker"] = .string(remote.breakerState) }
                    if let counts = guards[name] { entry["guard"] = counts }
                    if let isolated = lease.target as? IsolatedConnector {
                        let process = isolated.processStatus
                        entry["isolation"] = "process"
                        entry["process"] = process
                        if process["state"]?.stringValue != "running" { entry["status"] = "restarting" }
                    }
                    return .object(entry)
                }
                if apps[name]?["status"]?.stringValue != "serving" { healthy = false }
            } catch {
                healthy = false
                apps[name] = ["status": "unavailable", "detail": .string(error.detail)]
            }
        }
        return ["status": healthy ? "ok" : "degraded", "apps": .object(apps)]
    }

    static func tlsConfiguration(_ tls: AgentConfig.TLS) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)))
        configuration.minimumTLSVersion = .tlsv12
        // Closing an idle keep-alive connection on shutdown waited the default 5 s for a
        // close_notify that idle clients never send.
        configuration.shutdownTimeout = .milliseconds(500)
        return configuration
    }

    /// Everything the agent runs: its listener (unless an uplink-only configuration leaves
    /// `server.listen` out), the `/metrics` listener, the uplinks, and `services`.
    /// SIGTERM and SIGINT stop them gracefully, the later ones first.
    public static func serviceGroup(
        service: SCIMService, config: AgentConfig, logger: Logger, services: [any Service] = [],
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> ServiceGroup {
        var services = services
        let rates = config.server.metrics ? RequestRates() : nil
        if let rates { services.append(rates) }
        if config.server.metrics, let listen = config.server.metricsListen {
            // `/metrics` alone, on a listener of its own (plain HTTP, for a scraper on the inside).
            let metricsRouter = Router(context: AgentRequestContext.self)
            metricsRouter.add(middleware: SCIMErrorMiddleware())
            addMetrics(to: metricsRouter, service: service, config: config)
            services.append(Application(
                router: metricsRouter,
                configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "provisioning-agent"),
                onServerRunning: { channel in logger.info("serving /metrics", metadata: ["listen": .string("\(channel.localAddress?.description ?? "?")")]) },
                logger: logger))
        }
        let router = router(service: service, config: config, logger: logger, rates: rates)
        if config.server.listens {
            let server: HTTPServerBuilder = try config.server.tls.map { try .tls(.http1(), tlsConfiguration: tlsConfiguration($0)) } ?? .http1()
            services.insert(Application(
                router: router, server: server,
                configuration: .init(address: .hostname(config.server.host, port: config.server.port), serverName: "provisioning-agent"),
                onServerRunning: onServerRunning, logger: logger), at: 0)
        }
        // Last, so that on shutdown the uplinks drain first, while everything else still serves.
        if let uplink = config.uplink {
            services.append(UplinkService(uplink: uplink, responder: router.buildResponder(), registry: service.registry, logger: logger))
        }
        return ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    }
}
