import Hummingbird
import Logging
import NIOCore
import SCIMKit

/// One log line per request: request id, app, operation, status and duration. Never headers
/// or bodies, which may carry credentials and passwords. Also turns any error that escaped a
/// route into a SCIM error body.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = AgentRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var status: Int
        let response: Response
        do {
            response = try await next(request, context)
            status = response.status.code
        } catch let error as SCIMErrorResponse {
            status = error.error.status
            log(request, context, status, start)
            throw error
        } catch let error as SCIMError {
            status = error.status
            log(request, context, status, start)
            throw SCIMErrorResponse(error: error)
        } catch let error as HTTPResponseError {
            status = error.status.code
            log(request, context, status, start)
            let detail = error.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : error.status.reasonPhrase
            throw SCIMErrorResponse(error: SCIMError(status: status, detail: detail))
        } catch {
            status = 500
            log(request, context, status, start)
            var metadata: Logger.Metadata = ["error": .string("\(error)")]
            if let app = AuthenticationMiddleware.appName(request.uri.path) { metadata["app"] = .string(app) }
            context.logger.error("request failed", metadata: metadata)
            throw SCIMErrorResponse(error: SCIMError(status: 500, detail: "internal error"))
        }
        log(request, context, status, start)
        return response
    }

    func log(_ request: Request, _ context: Context, _ status: Int, _ start: ContinuousClock.Instant) {
        guard context.logger.logLevel <= .info else { return }  // nothing to build when it would be dropped
        let elapsed = ContinuousClock.now - start
        let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        var metadata: Logger.Metadata = [
            "http.method": .string(request.method.rawValue),
            "http.path": .string(request.uri.path),
            "http.status": .stringConvertible(status),
            "duration.ms": .string("\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())"),
        ]
        if let app = AuthenticationMiddleware.appName(request.uri.path) { metadata["app"] = .string(app) }
        context.logger.info("request", metadata: metadata)
    }
}
