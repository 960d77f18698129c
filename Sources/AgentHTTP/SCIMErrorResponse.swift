import AgentCore
import Hummingbird
import Logging
import SCIMKit

/// A SCIM error (RFC 7644 §3.12) with the headers it needs (a 401's challenge, a 405's Allow).
struct SCIMErrorResponse: Error {
    var error: SCIMError
    var extraHeaders: HTTPFields = [:]
}

/// The one place errors become HTTP responses: any error a route or the router throws is
/// answered as a SCIM error in the request's dialect (SCIM 1.1's shape under `/scim/v1/`).
/// What is not a SCIM error is a 500 whose cause is logged, never sent.
/// An app's 5xx answers and 429 refusals are kept for the status page (`RecentFailures`).
struct SCIMErrorMiddleware: RouterMiddleware {
    typealias Context = AgentRequestContext
    var failures: RecentFailures?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let answer: SCIMError
        var headers: HTTPFields = [:]
        do {
            return try await next(request, context)
        } catch let e as SCIMErrorResponse {
            (answer, headers) = (e.error, e.extraHeaders)
        } catch let e as SCIMError {
            answer = e
        } catch let e as HTTPResponseError {
            let detail = e.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : e.status.reasonPhrase
            (answer, headers) = (SCIMError(status: e.status.code, detail: detail), (e as? HTTPError)?.headers ?? [:])
        } catch {
            var metadata: Logger.Metadata = ["error": .string("\(error)")]
            if !context.app.isEmpty { metadata["app"] = .string(context.app) }
            context.logger.error("request failed", metadata: metadata)
            answer = SCIMError(status: 500, detail: "internal error")
        }
        if let failures, !context.app.isEmpty, answer.status >= 500 || answer.status == 429 {
            failures.record(app: context.app, request: "\(request.method) \(request.uri.path)", status: answer.status, detail: answer.detail)
        }
        return Self.response(answer, headers: headers, context)
    }

    static func response(_ error: SCIMError, headers: HTTPFields = [:], _ context: Context) -> Response {
        var headers = headers
        if let seconds = error.retryAfter { headers[.retryAfter] = String(seconds) }
        let body = context.dialect == .v1 ? SCIM11.error(error) : error.json
        return SCIMResponse.json(body, status: .init(code: error.status), headers: headers)
    }
}

enum SCIMResponse {
    static let contentType = "application/scim+json"

    static func json(_ body: JSON, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = contentType
        let buffer = ByteBuffer(bytes: body.serializedBytes())
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: buffer))
    }
}
