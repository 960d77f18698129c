import Hummingbird
import Logging

/// One log line per request, at info: request id, app, operation, status and duration. Never
/// headers or bodies, which may carry credentials and passwords. (Installed only when the
/// agent logs at info or below.)
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = AgentRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            log(request, context, (error as? HTTPResponseError)?.status.code ?? 500, start)
            throw error
        }
        log(request, context, response.status.code, start)
        return response
    }

    func log(_ request: Request, _ context: Context, _ status: Int, _ start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        var metadata: Logger.Metadata = [
            "http.method": .string(request.method.rawValue),
            "http.path": .string(request.uri.path),
            "http.status": .stringConvertible(status),
            "duration.ms": .string("\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())"),
        ]
        if !context.app.isEmpty { metadata["app"] = .string(context.app) }
        context.logger.info("request", metadata: metadata)
    }
}
