import AgentCore
import Hummingbird
import NIOCore
import SCIMKit

/// The SCIM 2.0 endpoints of every app: `/apps/{app}/scim/v2/...`. Each route reads the HTTP
/// request into SCIM terms and hands it to `SCIMService`.
struct SCIMRoutes: ResourceEndpoints {

    let service: SCIMService
    let maxBodySize: Int
    let scheme: String

    func register(on v2: RouterGroup<Context>) {
        registerResources(on: v2)
        for kind in Kind.allCases {
            v2.post(RouterPath(kind.endpoint.dropFirst() + "/.search")) { request, context in try await searchPost(kind, request, context) }
        }
        v2.post(".search") { request, context in try await searchPost(nil, request, context) }
        v2.post("Bulk") { request, context in
            let limit = max(maxBodySize, try await service.capabilities(app: context.app).bulkMaxPayloadSize)
            let body = try await readBody(request, limit: limit)
            return respond(try await service.bulk(app: context.app, body: body, baseURL: baseURL(request, context)))
        }
        v2.get("ServiceProviderConfig") { request, context in
            let attributes = try QueryString.parse(request.uri.query ?? "")["attributes"] ?? ""
            let okta = attributes.lowercased().contains(Discovery.oktaProviderConfigSchema)
            return SCIMResponse.json(try await discovery(request, context).serviceProviderConfig(includeOktaExtension: okta))
        }
        v2.get("ResourceTypes") { request, context in
            let types = try await discovery(request, context).resourceTypes
            return SCIMResponse.json(ListResponse(totalResults: types.count, startIndex: 1, resources: types).json)
        }
        v2.get("ResourceTypes/:id") { request, context in
            let id = try context.parameters.require("id")
            guard let type = try await discovery(request, context).resourceTypes.first(where: { $0["id"]?.stringValue == id }) else {
                throw SCIMError.notFound("app \(context.app) has no resource type \(id)")
            }
            return SCIMResponse.json(type)
        }
        v2.get("Schemas") { request, context in
            let discovery = try await discovery(request, context)
            let schemas = discovery.schemas.map { discovery.schemaJSON($0) }
            return SCIMResponse.json(ListResponse(totalResults: schemas.count, startIndex: 1, resources: schemas).json)
        }
        v2.get("Schemas/:id") { request, context in
            let id = try context.parameters.require("id")
            let discovery = try await discovery(request, context)
            guard let schema = discovery.schemas.first(where: { $0.id.caselessEquals(id) }) else {
                throw SCIMError.notFound("app \(context.app) has no schema \(id)")
            }
            return SCIMResponse.json(discovery.schemaJSON(schema))
        }
        // Discovery documents are read-only (RFC 7644 §4).
        for path in ["ServiceProviderConfig", "ResourceTypes", "ResourceTypes/:id", "Schemas", "Schemas/:id"] {
            for method in [HTTPRequest.Method.post, .put, .patch, .delete] {
                v2.on(RouterPath(path), method: method) { _, _ -> Response in
                    throw SCIMErrorResponse(error: SCIMError(status: 405, detail: "\(path) is read-only"), extraHeaders: [.allow: "GET"])
                }
            }
        }
    }

    // MARK: - Resource endpoints

    func create(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let body = try await readBody(request)
        return respond(try await service.create(app: context.app, kind: kind, body: body, presentation: try presentation(request, context)))
    }

    func get(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let result = try await service.get(app: context.app, kind: kind, id: try id(context), presentation: try presentation(request, context))
        if let ifNoneMatch = request.headers[.ifNoneMatch], let etag = result.etag, ResourceVersion.ifNoneMatch(ifNoneMatch, current: etag) {
            return Response(status: .notModified, headers: [.eTag: etag])
        }
        return respond(result)
    }

    func replace(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let body = try await readBody(request)
        return respond(try await service.replace(
            app: context.app, kind: kind, id: try id(context), body: body, ifMatch: request.headers[.ifMatch], presentation: try presentation(request, context)))
    }

    func patch(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let body = try await readBody(request)
        return respond(try await service.patch(
            app: context.app, kind: kind, id: try id(context), body: body, ifMatch: request.headers[.ifMatch], presentation: try presentation(request, context)))
    }

    func delete(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        respond(try await service.delete(app: context.app, kind: kind, id: try id(context), ifMatch: request.headers[.ifMatch]))
    }

    func list(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        respond(try await search(kind, request, context))
    }

    /// GET on a collection: the query and projection from the query string.
    func search(_ kind: Kind, _ request: Request, _ context: Context) async throws -> SCIMResult {
        let parameters = try QueryString.parse(request.uri.query ?? "")
        let query = try Query(parameters: { parameters[$0] })
        let projection = try Projection(attributes: parameters["attributes"], excludedAttributes: parameters["excludedAttributes"])
        return try await service.search(
            app: context.app, kind: kind, query: query, presentation: Presentation(baseURL: baseURL(request, context), projection: projection))
    }

    /// POST .search (RFC 7644 §3.4.3): the SearchRequest body carries the query.
    func searchPost(_ kind: Kind?, _ request: Request, _ context: Context) async throws -> Response {
        let app = context.app
        let body = try await readBody(request)
        guard case .object = body else { throw SCIMError.invalidValue("a SearchRequest must be a JSON object") }
        func parameter(_ name: String) -> String? {
            switch body[name] {
            case .string(let s)?: return s
            case .number(let n)?: return String(Int(n))
            case .array(let a)?: return a.compactMap(\.stringValue).joined(separator: ",")
            default: return nil
            }
        }
        let query = try Query(parameters: parameter)
        let projection = try Projection(attributes: parameter("attributes"), excludedAttributes: parameter("excludedAttributes"))
        let presentation = Presentation(baseURL: baseURL(request, context), projection: projection)
        let capabilities = try await service.capabilities(app: app)
        let kinds = kind.map { [$0] } ?? Kind.allCases.filter { capabilities.resource($0) != nil }
        if kinds.count == 1 {
            return respond(try await service.search(app: app, kind: kinds[0], query: query, presentation: presentation))
        }
        // Root search: every resource type, one list, paged as a whole.
        if query.cursor != nil { throw SCIMError.invalidValue("cursor paging is for /Users and /Groups; page a search of every resource type by startIndex") }
        var all: [JSON] = []
        for k in kinds {
            let r = try await service.search(app: app, kind: k, query: Query(filter: query.filter, sortBy: query.sortBy, sortOrder: query.sortOrder), presentation: presentation)
            all += r.body?["Resources"]?.arrayValue ?? []
        }
        let page = ResultShaping.page(all, startIndex: query.startIndex, count: query.count)
        return SCIMResponse.json(ListResponse(totalResults: all.count, startIndex: query.startIndex, resources: Array(page)).json)
    }

    // MARK: - Helpers

    func respond(_ result: SCIMResult) -> Response {
        var headers: HTTPFields = [:]
        if let etag = result.etag { headers[.eTag] = etag }
        if let location = result.location { headers[.location] = location }
        guard let body = result.body else { return Response(status: .init(code: result.status), headers: headers) }
        return SCIMResponse.json(body, status: .init(code: result.status), headers: headers)
    }

    func id(_ context: Context) throws -> String {
        let id = try context.parameters.require("id")
        guard !id.isEmpty else { throw SCIMError.notFound("no id in the URL") }
        return id
    }

    func discovery(_ request: Request, _ context: Context) async throws -> Discovery {
        try await service.discovery(app: context.app, baseURL: baseURL(request, context))
    }

    /// Where the app's resources live, in the request's dialect, as the client addressed us.
    func baseURL(_ request: Request, _ context: Context) -> String {
        let host = request.head.authority ?? "localhost"
        var scheme = scheme
        if case .relayed(let relayed) = context.peer { scheme = relayed.scheme }
        return "\(scheme)://\(host)/apps/\(context.app)/scim/\(context.dialect.rawValue)"
    }

    /// The base URL and the `attributes` / `excludedAttributes` the client asked for.
    func presentation(_ request: Request, _ context: Context) throws -> Presentation {
        let parameters = try QueryString.parse(request.uri.query ?? "")
        let projection = try Projection(attributes: parameters["attributes"], excludedAttributes: parameters["excludedAttributes"])
        return Presentation(baseURL: baseURL(request, context), projection: projection)
    }

    func readBody(_ request: Request, limit: Int? = nil) async throws -> JSON {
        let limit = limit ?? maxBodySize
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw SCIMError(status: 413, detail: "request body larger than \(limit) bytes")
        }
        guard buffer.readableBytes > 0 else { throw SCIMError(status: 400, scimType: .invalidSyntax, detail: "the request has no body") }
        return try buffer.withUnsafeReadableBytes { raw in
            try JSON.parse(raw.bindMemory(to: UInt8.self))
        }
    }
}

/// The resource endpoints of a SCIM dialect, registered alike for each: `Users` and `Groups`
/// (POST and GET on the collection; GET, PUT, PATCH and DELETE by id).
protocol ResourceEndpoints: Sendable {
    typealias Context = AgentRequestContext
    typealias Kind = Capabilities.ResourceKind
    func create(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response
    func list(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response
    func get(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response
    func replace(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response
    func patch(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response
    func delete(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response
}

extension ResourceEndpoints {
    func registerResources(on group: RouterGroup<Context>) {
        for kind in Kind.allCases {
            let endpoint = String(kind.endpoint.dropFirst())
            group.post(RouterPath(endpoint)) { request, context in try await create(kind, request, context) }
            group.get(RouterPath(endpoint)) { request, context in try await list(kind, request, context) }
            group.get(RouterPath(endpoint + "/:id")) { request, context in try await get(kind, request, context) }
            group.put(RouterPath(endpoint + "/:id")) { request, context in try await replace(kind, request, context) }
            group.patch(RouterPath(endpoint + "/:id")) { request, context in try await patch(kind, request, context) }
            group.delete(RouterPath(endpoint + "/:id")) { request, context in try await delete(kind, request, context) }
        }
    }
}

/// Query strings as SCIM clients send them: percent-encoding, and '+' for a space. A name or
/// value that is not UTF-8 once decoded is a 400 (`invalidFilter` for the filter), never
/// replaced characters that would match nothing.
enum QueryString {
    static func parse(_ query: String) throws(SCIMError) -> [String: String] {
        var out: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = decode(parts[0]) else { throw .invalidValue("a query parameter's name is not UTF-8 once percent-decoded") }
            guard let value = parts.count > 1 ? decode(parts[1]) : "" else {
                let detail = "the query parameter \(key) is not UTF-8 once percent-decoded"
                throw key == "filter" ? .invalidFilter(detail) : .invalidValue(detail)
            }
            if out[key] == nil { out[key] = value }
        }
        return out
    }

    static func decode(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else if c == UInt8(ascii: "%"), it.count >= 2, let h = hex(it[it.startIndex]), let l = hex(it[it.startIndex + 1]) {
                bytes.append(h << 4 | l)
                it = it.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 65...70: c - 55
        case 97...102: c - 87
        default: nil
        }
    }
}
