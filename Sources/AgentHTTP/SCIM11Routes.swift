import AgentCore
import Hummingbird
import SCIMKit

/// The SCIM 1.1 endpoints of every app, `/apps/{app}/scim/v1/...`, for clients that speak
/// the older dialect (Okta's on-premises agent by default). Each request is translated to
/// SCIM 2.0 (`SCIM11`), answered by the same `SCIMService` as `/scim/v2`, and its answer
/// translated back; errors take the 1.1 shape (`SCIMErrorResponse`).
struct SCIM11Routes: ResourceEndpoints {

    let routes: SCIMRoutes
    var service: SCIMService { routes.service }

    /// `/apps/{app}/scim/v1` and below.
    static func isSCIM11(_ path: String) -> Bool {
        guard path.hasPrefix("/apps/") else { return false }
        let rest = path.dropFirst(6).drop { $0 != "/" }
        return rest == "/scim/v1" || rest.hasPrefix("/scim/v1/")
    }

    func register(on router: Router<Context>) {
        let v1 = router.group("apps/:app/scim/v1")
        registerResources(on: v1)
        // Okta's capability list for SCIM 1.1 clients.
        v1.get("ServiceProviderConfigs") { request, context in
            let app = try routes.appName(context)
            return SCIMResponse.json(try service.discovery(app: app, baseURL: baseURL(request, app)).oktaSCIM11ServiceProviderConfig)
        }
    }

    func create(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let app = try routes.appName(context)
        let body = SCIM11.toV2(try await routes.readBody(request), kind)
        return respond(try await service.create(app: app, kind: kind, body: body, baseURL: baseURL(request, app), projection: try routes.projection(request)))
    }

    func get(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let app = try routes.appName(context)
        return respond(try await service.get(app: app, kind: kind, id: try routes.id(context), baseURL: baseURL(request, app), projection: try routes.projection(request)))
    }

    func replace(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let app = try routes.appName(context)
        let body = SCIM11.toV2(try await routes.readBody(request), kind)
        return respond(try await service.replace(
            app: app, kind: kind, id: try routes.id(context), body: body, ifMatch: request.headers[.ifMatch],
            baseURL: baseURL(request, app), projection: try routes.projection(request)))
    }

    func patch(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let app = try routes.appName(context)
        let base = baseURL(request, app)
        guard let schema = try service.discovery(app: app, baseURL: base).capabilities.resource(kind)?.schema else {
            throw SCIMErrorResponse(error: .notImplemented("app \(app) does not hold \(kind.rawValue)s"))
        }
        let id = try routes.id(context)
        let body = try SCIM11.patchToV2(try await routes.readBody(request), kind, schema: schema)
        if body["Operations"]?.arrayValue?.isEmpty == true {
            // Nothing to change: the resource as it is.
            return respond(try await service.get(app: app, kind: kind, id: id, baseURL: base, projection: try routes.projection(request)))
        }
        return respond(try await service.patch(
            app: app, kind: kind, id: id, body: body, ifMatch: request.headers[.ifMatch], baseURL: base, projection: try routes.projection(request)))
    }

    func delete(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let app = try routes.appName(context)
        return routes.respond(try await service.delete(app: app, kind: kind, id: try routes.id(context), ifMatch: request.headers[.ifMatch], baseURL: baseURL(request, app)))
    }

    func list(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let app = try routes.appName(context)
        var result = try await routes.search(kind, request, app: app, baseURL: baseURL(request, app))
        result.body = result.body.map(SCIM11.listFromV2)
        return routes.respond(result)
    }

    func respond(_ result: SCIMResult) -> Response {
        var result = result
        result.body = result.body.map(SCIM11.fromV2)
        return routes.respond(result)
    }

    func baseURL(_ request: Request, _ app: String) -> String { routes.baseURL(request, app, version: "v1") }
}
