import AgentCore
import Hummingbird

/// Counts and times every request to an app (`AgentMetrics.request`), with the status the
/// client got: it sits outside `SCIMErrorMiddleware`, which has turned errors into responses.
struct MetricsMiddleware: RouterMiddleware {
    typealias Context = AgentRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard !context.app.isEmpty else { return try await next(request, context) }
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        let nanos = elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
        AgentMetrics.request(
            app: context.app, method: request.method.rawValue, operation: Self.operation(request.method, request.uri.path),
            status: response.status.code, nanoseconds: nanos)
        return response
    }

    /// What a request does, from its method and path: get, list, search, create, replace,
    /// patch, delete, bulk, discovery.
    static func operation(_ method: HTTPRequest.Method, _ path: String) -> String {
        let parts = path.split(separator: "/")  // apps, {app}, scim, v2, {endpoint}, [{id}]
        guard parts.count >= 5 else { return "other" }
        let endpoint = parts[4]
        if endpoint == "Users" || endpoint == "Groups" {
            let hasID = parts.count >= 6 && parts[5] != ".search"
            switch method {
            case .get: return hasID ? "get" : "list"
            case .post: return parts.count >= 6 && parts[5] == ".search" ? "search" : "create"
            case .put: return "replace"
            case .patch: return "patch"
            case .delete: return "delete"
            default: return "other"
            }
        }
        if endpoint == "Bulk" { return "bulk" }
        if endpoint == ".search" { return "search" }
        return "discovery"
    }
}
