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
    public static func router(service: SCIMService, config: AgentConfig, logger: Logger) -> Router<AgentRequestContext> {
        let router = Router(context: AgentRequestContext.self)
        router.add(middleware: AppPathMiddleware())
        // Request lines are logged at info; below that level nothing is added to a request.
        if logger.logLevel <= .info { router.add(middleware: RequestLogMiddleware()) }
        if config.server.metrics { router.add(middleware: MetricsMiddleware()) }
        router.add(middleware: SCIMErrorMiddleware())
        // Prometheus text format, on the agent's own listener like /healthz (README, "Metrics").
        if config.server.metrics { router.get("metrics") { _, _ in
            AgentMetrics.refreshGauges(service.registry)
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: PrometheusMetricsFactory.defaultRegistry.emitToBuffer())))
        } }
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

    public static func application(
        service: SCIMService, config: AgentConfig, logger: Logger, services: [any Service] = [],
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let server: HTTPServerBuilder
        if let tls = config.server.tls {
            var tlsConfiguration = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)))
            tlsConfiguration.minimumTLSVersion = .tlsv12
            server = try .tls(.http1(), tlsConfiguration: tlsConfiguration)
        } else {
            server = .http1()
        }
        return Application(
            router: router(service: service, config: config, logger: logger), server: server,
            configuration: .init(address: .hostname(config.server.host, port: config.server.port), serverName: "provisioning-agent"),
            services: services, onServerRunning: onServerRunning, logger: logger)
    }
}
