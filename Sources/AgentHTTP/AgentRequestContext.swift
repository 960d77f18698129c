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
    /// Where the request came from, for the client's address in audit lines.
    let peer: Peer

    enum Peer {
        /// A client of the agent's own listener.
        case channel(any Channel)
        /// A request a relay handed over an uplink, after checking the app's credential itself.
        case relayed(Relayed)
    }

    struct Relayed: Sendable {
        /// The client's address as the relay saw it.
        var client: String?
        /// Which of the app's credentials the relay checked ("basic okta").
        var credential: String
        /// The scheme the client used, for `meta.location`.
        var scheme: String
    }

    public init(source: Source) {
        coreContext = .init(source: source)
        peer = .channel(source.channel)
    }

    init(relayed: Relayed, logger: Logger) {
        coreContext = .init(source: RelayedSource(logger: logger))
        peer = .relayed(relayed)
    }

    struct RelayedSource: RequestContextSource {
        let logger: Logger
    }

    var clientAddress: String? {
        switch peer {
        case .channel(let channel): channel.remoteAddress?.ipAddress
        case .relayed(let r): r.client
        }
    }

    /// A client on this machine, of the agent's own listener.
    var isLoopbackClient: Bool {
        guard case .channel = peer, let ip = clientAddress else { return false }  // a Unix socket has none; not served
        return Self.isLoopback(ip)
    }

    static func isLoopback(_ ip: String) -> Bool {
        ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
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
