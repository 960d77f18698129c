import Hummingbird
import Logging
import NIOCore

/// Per-request state. `AppPathMiddleware` sets `app` and `dialect` from the URL once, before
/// routing; everything after it (authentication, routes, error bodies, the log line) reads
/// them from here.
public struct AgentRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The app of `/apps/{app}/…`; empty outside them.
    var app = ""
    var dialect = SCIMDialect.v2
    /// The connection, for the client's address in audit lines.
    let channel: any Channel

    public init(source: Source) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The SCIM version a request speaks, which shapes its answers and errors.
enum SCIMDialect: String, Sendable {
    case v2, v1
}

/// `/apps/{app}/scim/v1[/…]` is SCIM 1.1, every other path SCIM 2.0.
struct AppPathMiddleware: RouterMiddleware {
    typealias Context = AgentRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        (context.app, context.dialect) = Self.parse(request.uri.path)
        return try await next(request, context)
    }

    /// By bytes: this runs for every request.
    static func parse(_ path: String) -> (app: String, dialect: SCIMDialect) {
        let u = path.utf8
        guard u.starts(with: "/apps/".utf8) else { return ("", .v2) }
        let start = u.index(u.startIndex, offsetBy: 6)
        let end = u[start...].firstIndex(of: UInt8(ascii: "/")) ?? u.endIndex
        let app = String(decoding: u[start..<end], as: UTF8.self)
        let tail = u[end...]
        let v1 = tail.starts(with: "/scim/v1".utf8) && (tail.count == 8 || tail.dropFirst(8).first == UInt8(ascii: "/"))
        return (app, v1 ? .v1 : .v2)
    }
}
