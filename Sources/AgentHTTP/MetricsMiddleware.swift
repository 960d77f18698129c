import AgentCore
import Foundation
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
    /// patch, delete, bulk, discovery. Read from the path's bytes: /apps/{app}/scim/v2/{endpoint}[/{id}].
    static func operation(_ method: HTTPRequest.Method, _ path: String) -> String {
        var path = path
        return path.withUTF8 { bytes -> String in
            // The 5th and 6th non-empty segments, as `split(separator: "/")` would give them.
            var endpoint: UnsafeBufferPointer<UInt8>?
            var next: UnsafeBufferPointer<UInt8>?
            var index = 0, start = 0
            for i in 0...bytes.count where i == bytes.count || bytes[i] == UInt8(ascii: "/") {
                if i > start {
                    let segment = UnsafeBufferPointer(rebasing: bytes[start..<i])
                    if index == 4 { endpoint = segment } else if index == 5 { next = segment; break }
                    index += 1
                }
                start = i + 1
            }
            guard let endpoint else { return "other" }
            func equals(_ b: UnsafeBufferPointer<UInt8>?, _ s: StaticString) -> Bool {
                guard let b, b.count == s.utf8CodeUnitCount else { return false }
                return memcmp(b.baseAddress!, s.utf8Start, b.count) == 0
            }
            if equals(endpoint, "Users") || equals(endpoint, "Groups") {
                let search = equals(next, ".search")
                let hasID = next != nil && !search
                switch method {
                case .get: return hasID ? "get" : "list"
                case .post: return search ? "search" : "create"
                case .put: return "replace"
                case .patch: return "patch"
                case .delete: return "delete"
                default: return "other"
                }
            }
            if equals(endpoint, "Bulk") { return "bulk" }
            if equals(endpoint, ".search") { return "search" }
            return "discovery"
        }
    }
}
