import Hummingbird
import SCIMKit

/// The one place SCIM errors (RFC 7644 §3.12) become HTTP responses.
struct SCIMErrorResponse: HTTPResponseError {
    var error: SCIMError
    var extraHeaders: HTTPFields = [:]

    var status: HTTPResponse.Status { .init(code: error.status) }
    var headers: HTTPFields { extraHeaders }

    /// In the dialect of the URL: SCIM 1.1 errors under `/scim/v1/`, SCIM 2.0 ones elsewhere.
    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = SCIM11Routes.isSCIM11(request.uri.path) ? SCIM11.error(error) : error.json
        return SCIMResponse.json(body, status: status, headers: extraHeaders)
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
