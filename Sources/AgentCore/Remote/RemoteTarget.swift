import AsyncHTTPClient
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import SCIMKit

/// An app that forwards to a remote SCIM server over HTTP (one pooled client for the process).
/// Its capabilities come from the remote's discovery documents. Calls hold no thread while
/// they wait for the remote (AsyncHTTPClient's async `execute`, `Task.sleep` between retries).
public final class RemoteTarget: Target, @unchecked Sendable {
    // @unchecked: mutable state lives in the NIOLockedValueBoxes.
    public let app: String
    let config: AgentConfig.Remote
    let client: HTTPClient
    let logger: Logger
    let tls: TLSConfiguration?
    let breaker: NIOLockedValueBox<CircuitBreaker>
    let discovered: NIOLockedValueBox<Discovered>
    let token = NIOLockedValueBox<(value: String, expires: Double)?>(nil)
    /// Open once the first discovery has finished, answered or not.
    let firstDiscovery = Latch()
    private let discovering = NIOLockedValueBox(false)

    struct Discovered {
        var capabilities: Capabilities
        var filter = true
        /// The remote pages by RFC 9865 cursor (`pagination.cursor`): a client's cursor import passes its cursors through.
        var cursor = false
        var source = "defaults (not yet discovered)"
    }

    public var description: String { "remote \(config.url)" }
    public var name: String { "remote" }
    public var version: String { discovered.withLockedValue { $0.source } }
    public var capabilities: Capabilities { discovered.withLockedValue { $0.capabilities } }
    public var breakerState: String { breaker.withLockedValue { $0.label } }

    init(app: String, config: AgentConfig.Remote, client: HTTPClient, auth: AgentConfig.Auth, logger: Logger) throws {
        self.app = app
        self.config = config
        self.client = client
        self.logger = logger
        if config.url.hasPrefix("https") {
            var t = TLSConfiguration.makeClientConfiguration()
            t.minimumTLSVersion = .tlsv12
            if let ca = config.caFile { t.trustRoots = .file(ca) }
            tls = t
        } else {
            tls = nil
        }
        breaker = NIOLockedValueBox(CircuitBreaker(threshold: config.breakerThreshold, cooldown: config.breakerCooldown))
        discovered = NIOLockedValueBox(Discovered(capabilities: Self.defaults(auth: auth)))
        self.auth = auth
    }
    let auth: AgentConfig.Auth

    /// What is assumed of a server that publishes nothing: users and groups, everything
    /// RFC 7644 makes mandatory, no PATCH, no sort, filtering by the agent.
    static func defaults(auth: AgentConfig.Auth) -> Capabilities {
        let ops: Capabilities.Operations = [.create, .get, .replace, .delete, .search]
        return Capabilities(
            users: .init(operations: ops, schema: CoreSchemas.userResource, passwordWritable: true, activeWritable: true, lastModifiedFilter: true),
            groups: .init(operations: ops, schema: CoreSchemas.groupResource),
            authenticationSchemes: CapabilityDiscovery.authenticationSchemes(auth))
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    // MARK: - HTTP

    struct Reply {
        var status: Int
        var body: JSON?
    }

    /// `unreachable`: no connection could be made, so nothing was sent. `connect`: any other
    /// transport failure, which may have happened after the request went out.
    enum Failure: Error { case unreachable(String), connect(String), timeout(String), lost(String) }

    func authorization() async throws(SCIMError) -> [(String, String)] {
        switch config.auth {
        case .none: return []
        case .basic(let u, let p): return [("Authorization", "Basic " + Data("\(u):\(p)".utf8).base64EncodedString())]
        case .header(let n, let v): return [(n, v)]
        case .oauth2(let tokenURL, let clientID, let secret, let scope):
            if let t = token.withLockedValue({ $0 }), t.expires > Self.now() + 5 { return [("Authorization", "Bearer " + t.value)] }
            var form = "grant_type=client_credentials"
            if let scope { form += "&scope=" + (scope.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? scope) }
            let basic = Data("\(clientID):\(secret)".utf8).base64EncodedString()
            let reply: Reply
            do {
                reply = try await raw("POST", tokenURL, body: form, contentType: "application/x-www-form-urlencoded", headers: [("Authorization", "Basic " + basic)])
            } catch {
                throw SCIMError(status: 502, detail: "app \(app): cannot reach the OAuth token endpoint (\(error))")
            }
            guard reply.status == 200, let access = reply.body?["access_token"]?.stringValue else {
                throw SCIMError(status: 502, detail: "app \(app): the OAuth token endpoint answered \(reply.status)")
            }
            let expires = Self.now() + Double(reply.body?["expires_in"]?.intValue ?? 3600)
            token.withLockedValue { $0 = (access, expires) }
            return [("Authorization", "Bearer " + access)]
        }
    }

    /// The most a remote's reply may hold.
    static let maxReplySize = 64 << 20

    /// One HTTP exchange.
    func raw(_ method: String, _ url: String, body: String?, contentType: String = "application/scim+json", headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "Accept", value: "application/scim+json, application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(string: body))
        }
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        request.tlsConfiguration = tls
        let status: Int
        var buffer: ByteBuffer
        do {
            let response = try await client.execute(request, deadline: .now() + .milliseconds(Int64(config.requestTimeout * 1000)))
            status = Int(response.status.code)
            buffer = try await response.body.collect(upTo: Self.maxReplySize)
        } catch is NIOTooManyBytesError {
            throw Failure.connect("the reply is larger than \(Self.maxReplySize) bytes")
        } catch let e as HTTPClientError where e == .deadlineExceeded || e == .readTimeout {
            throw Failure.timeout("no answer within \(config.requestTimeout)s")
        } catch let e as HTTPClientError where e == .remoteConnectionClosed {
            throw Failure.lost("the connection closed before the answer")
        } catch let e as HTTPClientError where e == .connectTimeout {
            throw Failure.unreachable("\(e)")
        } catch let e as NIOConnectionError {
            throw Failure.unreachable("\(e)")
        } catch {
            throw Failure.connect("\(error)")
        }
        var json: JSON?
        if buffer.readableBytes > 0, let bytes = buffer.readBytes(length: buffer.readableBytes) {
            json = try? JSON.parse(bytes)
        }
        return Reply(status: status, body: json)
    }

    /// A SCIM call with auth, the circuit breaker, safe retries, and error translation.
    func send(_ method: String, _ path: String, _ body: JSON? = nil, idempotent: Bool, guarded: Bool = true, headers: [(String, String)] = []) async throws(SCIMError) -> Reply {
        var mayHaveReached = false
        return try await send(method, path, body, idempotent: idempotent, guarded: guarded, headers: headers, mayHaveReached: &mayHaveReached)
    }

    /// `mayHaveReached`: false after a failure when no attempt ever got a connection.
    func send(_ method: String, _ path: String, _ body: JSON?, idempotent: Bool, guarded: Bool, headers: [(String, String)] = [],
              mayHaveReached: inout Bool) async throws(SCIMError) -> Reply {
        if guarded, let wait = breaker.withLockedValue({ $0.admit(now: Self.now()) }) {
            throw SCIMError(status: 503, detail: "app \(app): remote \(config.url) is failing; not trying again for \(Int(wait.rounded(.up)))s")
        }
        let attempts = idempotent ? config.retries + 1 : 1
        var lastFailure = ""
        var timedOut = false
        for attempt in 0..<attempts {
            if attempt > 0 { try? await Task.sleep(for: .milliseconds(Int(min(2.0, 0.1 * pow(2, Double(attempt - 1))) * 1000))) }
            do {
                let text = body?.serialized()
                var reply = try await raw(method, config.url + path, body: text, headers: try await authorization() + headers)
                if reply.status == 401, case .oauth2 = config.auth {
                    token.withLockedValue { $0 = nil }  // refreshed once
                    reply = try await raw(method, config.url + path, body: text, headers: try await authorization() + headers)
                }
                if guarded { breaker.withLockedValue { $0.succeeded() } }
                return reply
            } catch let e as SCIMError {
                throw e
            } catch Failure.timeout(let m) {
                mayHaveReached = true
                lastFailure = m
                timedOut = true
                break  // a stalled server is not retried
            } catch Failure.lost(let m) where !idempotent {
                mayHaveReached = true
                if guarded { breaker.withLockedValue { $0.failed(now: Self.now()) } }
                throw SCIMError(status: 502, detail: "app \(app): remote \(config.url): \(m)")
            } catch Failure.unreachable(let m) {
                lastFailure = m
                timedOut = false
            } catch {
                mayHaveReached = true
                lastFailure = "\(error)"
                timedOut = false
            }
        }
        if guarded { breaker.withLockedValue { $0.failed(now: Self.now()) } }
        if timedOut { throw SCIMError(status: 504, detail: "app \(app): remote \(config.url): \(lastFailure)") }
        throw SCIMError(status: 502, detail: "app \(app): cannot reach remote \(config.url): \(lastFailure)")
    }

    func expect(_ reply: Reply, _ ok: Int...) throws(SCIMError) -> JSON? {
        if ok.contains(reply.status) { return reply.body }
        if let body = reply.body, let e = SCIMError(json: body, fallbackStatus: reply.status) {
            throw SCIMError(status: reply.status, scimType: e.scimType, detail: e.detail)  // the remote's own error, passed through
        }
        throw SCIMError(status: reply.status >= 400 ? reply.status : 502, detail: "app \(app): remote answered \(reply.status)")
    }

    func resource(_ reply: Reply, _ ok: Int...) throws(SCIMError) -> JSON {
        var body: JSON?
        for code in ok where reply.status == code { body = reply.body }
        if body == nil { _ = try expect(reply); throw SCIMError(status: 502, detail: "app \(app): remote answered \(reply.status)") }
        guard let b = body, case .object = b else { throw SCIMError(status: 502, detail: "app \(app): remote returned no resource") }
        return b
    }

    static func escape(_ id: String) -> String { id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? id }

    // MARK: - Target

    public func create(_ kind: Capabilities.ResourceKind, _ resource: JSON) async throws(SCIMError) -> JSON {
        let reply: Reply
        var mayHaveReached = false
        do {
            reply = try await send("POST", kind.endpoint, resource, idempotent: false, guarded: true, mayHaveReached: &mayHaveReached)
        } catch where error.status == 502 && mayHaveReached {
            // The request may have reached the server (the connection closed or was reset
            // after sending): look before deciding, never a blind retry. When no connection
            // was made, nothing was sent and there is nothing to look for.
            let key = kind.keyAttribute
            guard let value = resource[key]?.stringValue else { throw error }
            let query = Query(filter: .compare(AttributePath(name: key), .eq, .string(value)), count: 2)
            for attempt in 0..<3 {
                if attempt > 0 { try? await Task.sleep(for: .milliseconds(200)) }
                if let found = try? await search(kind, query).resources {
                    if found.count == 1 { return found[0] }
                    break  // answered: the create did not happen (or is ambiguous)
                }
            }
            throw error
        }
        return try self.resource(reply, 201, 200)
    }

    public func get(_ kind: Capabilities.ResourceKind, _ id: String) async throws(SCIMError) -> JSON {
        try resource(try await send("GET", kind.endpoint + "/" + Self.escape(id), idempotent: true), 200)
    }

    /// With `expected`, a PUT with If-Match: the remote's version of what was read.
    public func replace(_ kind: Capabilities.ResourceKind, _ id: String, _ resource: JSON, ifUnchanged expected: JSON?) async throws(SCIMError) -> JSON {
        var r = resource
        r["id"] = .string(id)
        var headers: [(String, String)] = []
        if let expected {
            guard let version = expected["meta"]?["version"]?.stringValue else {
                throw SCIMError(status: 502, detail: "app \(app): remote \(config.url) returned \(kind.rawValue) \(id) without meta.version, so it cannot be replaced conditionally")
            }
            headers.append(("If-Match", version))
        }
        return try self.resource(try await send("PUT", kind.endpoint + "/" + Self.escape(id), r, idempotent: true, headers: headers), 200)
    }

    public func patch(_ kind: Capabilities.ResourceKind, _ id: String, _ patch: PatchRequest) async throws(SCIMError) -> JSON {
        let reply = try await send("PATCH", kind.endpoint + "/" + Self.escape(id), patch.json, idempotent: false)
        if reply.status == 204 { return try await get(kind, id) }
        return try resource(reply, 200)
    }

    public func delete(_ kind: Capabilities.ResourceKind, _ id: String) async throws(SCIMError) {
        _ = try expect(try await send("DELETE", kind.endpoint + "/" + Self.escape(id), idempotent: true), 204, 200)
    }

    public func search(_ kind: Capabilities.ResourceKind, _ query: Query) async throws(SCIMError) -> SearchResult {
        let caps = capabilities
        let (filters, cursors) = discovered.withLockedValue { ($0.filter, $0.cursor) }
        let sort = caps.resource(kind)?.sort ?? false
        let filter = filters ? query.filter : nil
        let sortBy = sort ? query.sortBy : nil
        if query.filter == nil || filters, query.sortBy == nil || sort, cursors, let cursor = query.targetCursor {
            // A cursor import of a remote that pages by cursor: its own cursors, passed through.
            let (resources, total, next) = try await list(
                kind, filter: filter, sortBy: sortBy, query.sortOrder, position: .cursor(cursor), count: query.count ?? 1000, withoutMembers: query.withoutMembers)
            var result = SearchResult(resources: resources, totalResults: total ?? resources.count, filtered: true, sorted: true, paged: true)
            result.nextCursor = next ?? ""
            return result
        }
        if query.filter == nil || filters, query.sortBy == nil || sort {
            // The remote answers the whole query: one page of it.
            let (resources, total, _) = try await list(kind, filter: filter, sortBy: sortBy, query.sortOrder, position: .index(query.startIndex), count: query.count ?? 1000,
                                                 withoutMembers: query.withoutMembers)
            return SearchResult(resources: resources, totalResults: total ?? resources.count, filtered: true, sorted: true, paged: true)
        }
        // The agent filters or sorts: every page of what the remote selects is read (one
        // page would hold only its first `filter.maxResults`, and miss the rest).
        let schema = caps.resource(kind)?.schema ?? kind.coreSchema
        var page = SearchPage(query, filtered: filter != nil || query.filter == nil, sorted: query.sortBy == nil || sort, schema: schema, noun: "\(kind.rawValue)s")
        var seen = Set<String>()
        var start = 1
        while true {
            let (resources, total, _) = try await list(kind, filter: filter, sortBy: sortBy, query.sortOrder, position: .index(start), count: caps.filterMaxResults,
                                                 withoutMembers: query.withoutMembers)
            for r in resources {
                // Pages of a list the remote does not sort may overlap: each resource once.
                if let id = r["id"]?.stringValue, !seen.insert(id).inserted { continue }
                try page.offer(r)
            }
            start += resources.count
            guard !resources.isEmpty, let total, start <= total else { break }
        }
        return SearchResult(resources: page.resources, totalResults: page.totalResults, filtered: true, sorted: page.isPage, paged: page.isPage)
    }

    enum Position {
        case index(Int)
        /// RFC 9865: "" for the first page, else the remote's nextCursor.
        case cursor(String)
    }

    /// One GET of a list from the remote: its resources, totalResults, and nextCursor.
    func list(_ kind: Capabilities.ResourceKind, filter: Filter?, sortBy: AttributePath?, _ order: Query.SortOrder, position: Position, count: Int,
              withoutMembers: Bool) async throws(SCIMError) -> (resources: [JSON], total: Int?, next: String?)
    {
        var items: [URLQueryItem] = []
        if withoutMembers { items.append(URLQueryItem(name: "excludedAttributes", value: "members")) }
        if let filter { items.append(URLQueryItem(name: "filter", value: filter.description)) }
        if let sortBy {
            items.append(URLQueryItem(name: "sortBy", value: sortBy.description))
            items.append(URLQueryItem(name: "sortOrder", value: order.rawValue))
        }
        switch position {
        case .index(let startIndex): items.append(URLQueryItem(name: "startIndex", value: String(startIndex)))
        case .cursor(let cursor): items.append(URLQueryItem(name: "cursor", value: cursor))
        }
        items.append(URLQueryItem(name: "count", value: String(count)))
        var components = URLComponents()
        components.queryItems = items
        let q = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        let body = try expect(try await send("GET", kind.endpoint + "?" + q, idempotent: true), 200)
        guard let resources = body?["Resources"]?.arrayValue ?? (body?["totalResults"]?.intValue == 0 ? [] : nil) else {
            throw SCIMError(status: 502, detail: "app \(app): remote list has no Resources")
        }
        return (resources, body?["totalResults"]?.intValue, body?["nextCursor"]?.stringValue)
    }

    public func changeMembers(_ groupID: String, _ members: [JSON], add: Bool) async throws(SCIMError) {
        throw .notImplemented("remote targets take membership changes as PATCH")
    }

    public func test() async throws(SCIMError) -> String {
        let reply = try await send("GET", "/ServiceProviderConfig", idempotent: true)
        if reply.status == 401 || reply.status == 403 { throw SCIMError(status: 502, detail: "app \(app): remote \(config.url) refused our credentials (\(reply.status))") }
        try await discover()
        return "remote \(config.url) reachable and authenticated; capabilities from \(version)"
    }

    // MARK: - Discovery

    /// False while a discovery of this remote is already running.
    func startDiscovery() -> Bool { discovering.withLockedValue { d in defer { d = true }; return !d } }

    /// Until the first discovery has finished, waits for it `limit` at most: the first
    /// requests after a start see what the remote publishes, not the defaults.
    func awaitFirstDiscovery(atMost limit: Duration = .seconds(5)) async {
        guard !firstDiscovery.isOpen else { return }
        await firstDiscovery.wait(atMost: limit)
    }

    func finishDiscovery() { discovering.withLockedValue { $0 = false } }

    /// Reads /ServiceProviderConfig, /ResourceTypes and /Schemas; falls back to Okta's SCIM 1.1
    /// /ServiceProviderConfigs, then to safe defaults.
    public func discover() async throws(SCIMError) {
        defer { firstDiscovery.open() }
        var caps = Self.defaults(auth: auth)
        var source = "defaults (the remote publishes no discovery documents)"
        var filter = true
        var cursor = false
        // Discovery goes around the circuit breaker: only client requests open it.
        var spc = try await send("GET", "/ServiceProviderConfig", idempotent: true, guarded: false).body
        if spc?["schemas"] == nil, let v1 = (try? await send("GET", "/ServiceProviderConfigs", idempotent: true, guarded: false)), v1.status == 200 {
            spc = v1.body
        }
        if let spc {
            source = "the remote's ServiceProviderConfig"
            let patch = spc["patch"]?["supported"]?.boolValue ?? false
            let sort = spc["sort"]?["supported"]?.boolValue ?? false
            filter = spc["filter"]?["supported"]?.boolValue ?? true
            cursor = spc["pagination"]?["cursor"]?.boolValue ?? false
            let password = spc["changePassword"]?["supported"]?.boolValue ?? false
            var ops: Capabilities.Operations = [.create, .get, .replace, .delete, .search]
            if patch { ops.insert(.patch) }
            // A server that publishes ETags honours If-Match (RFC 7644 §3.14): the agent's own
            // get + PUT, when the server has no PATCH, is then conditional.
            if spc["etag"]?["supported"]?.boolValue == true { ops.insert(.conditionalReplace) }
            var types: [String: ResourceSchema] = [:]
            var published = false
            if let rt = (try? await send("GET", "/ResourceTypes", idempotent: true, guarded: false)), rt.status == 200 {
                let list = rt.body?["Resources"]?.arrayValue ?? rt.body?.arrayValue ?? []
                let schemas = (try? await send("GET", "/Schemas", idempotent: true, guarded: false)).flatMap { $0.status == 200 ? $0.body : nil }
                let parsed = (schemas?["Resources"]?.arrayValue ?? schemas?.arrayValue ?? []).compactMap { try? Schema(json: $0) }
                for t in list {
                    guard let endpoint = t["endpoint"]?.stringValue else { continue }
                    let kind = endpoint.caselessEquals("/Users") ? "User" : endpoint.caselessEquals("/Groups") ? "Group" : nil
                    guard let kind else { continue }
                    let fallback = kind == "User" ? CoreSchemas.userResource : CoreSchemas.groupResource
                    let core = t["schema"]?.stringValue.flatMap { id in parsed.first { $0.id == id } } ?? fallback.core
                    let exts = (t["schemaExtensions"]?.arrayValue ?? []).compactMap { e in e["schema"]?.stringValue.flatMap { id in parsed.first { $0.id == id } } }
                    types[kind] = ResourceSchema(core: core.attributes.isEmpty ? fallback.core : core, extensions: exts)
                }
                source += ", ResourceTypes and Schemas"
                published = !parsed.isEmpty
            } else {
                types = ["User": CoreSchemas.userResource, "Group": CoreSchemas.groupResource]
            }
            caps = Capabilities(
                users: types["User"].map {
                    .init(operations: ops, schema: $0, sort: sort, passwordWritable: password, activeWritable: true, lastModifiedFilter: true, holdsAnyAttribute: !published)
                },
                groups: types["Group"].map { .init(operations: ops, schema: $0, sort: sort, holdsAnyAttribute: !published) },
                bulkMaxOperations: 1000, filterMaxResults: spc["filter"]?["maxResults"]?.intValue.map { min($0, 1000) } ?? 1000,
                authenticationSchemes: CapabilityDiscovery.authenticationSchemes(auth))
        }
        discovered.withLockedValue { $0 = Discovered(capabilities: caps, filter: filter, cursor: cursor, source: source) }
    }
}
