import AgentCore
import Hummingbird
import SCIMKit

/// The SCIM 1.1 endpoints of every app, `/apps/{app}/scim/v1/...`, for clients that speak
/// the older dialect (Okta's on-premises agent by default). Each request is translated to
/// SCIM 2.0 (`SCIM11`), answered by the same `SCIMService` as `/scim/v2`, and its answer
/// translated back; errors take the 1.1 shape (`SCIMErrorMiddleware`, by `context.dialect`).
struct SCIM11Routes: ResourceEndpoints {

    let routes: SCIMRoutes
    var service: SCIMService { routes.service }

    func register(on v1: RouterGroup<Context>) {
        registerResources(on: v1)
        // Okta's capability list for SCIM 1.1 clients.
        v1.get("ServiceProviderConfigs") { request, context in
            SCIMResponse.json(try await routes.discovery(request, context).oktaSCIM11ServiceProviderConfig)
        }
    }

    func create(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let body = SCIM11.toV2(try await routes.readBody(request), kind)
        return respond(try await service.create(app: context.app, kind: kind, body: body, presentation: try routes.presentation(request, context)))
    }

    func get(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        respond(try await service.get(app: context.app, kind: kind, id: try routes.id(context), presentation: try routes.presentation(request, context)))
    }

    func replace(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        let body = SCIM11.toV2(try await routes.readBody(request), kind)
        return respond(try await service.replace(
            app: context.app, kind: kind, id: try routes.id(context), body: body, ifMatch: request.headers[.ifMatch],
            presentation: try routes.presentation(request, context)))
    }

    func patch(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        guard let schema = try await service.capabilities(app: context.app).resource(kind)?.schema else {
            throw SCIMError.notImplemented("app \(context.app) does not hold \(kind.rawValue)s")
        }
        let id = try routes.id(context)
        var presentation = try routes.presentation(request, context)
        presentation.groupAfterMemberChanges = true
        let body = try SCIM11.patchToV2(try await routes.readBody(request), kind, schema: schema)
        if body["Operations"]?.arrayValue?.isEmpty == true {
            // Nothing to change: the resource as it is.
            return respond(try await service.get(app: context.app, kind: kind, id: id, presentation: presentation))
        }
        return respond(try await service.patch(
            app: context.app, kind: kind, id: id, body: body, ifMatch: request.headers[.ifMatch], presentation: presentation))
    }

    func delete(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        routes.respond(try await service.delete(app: context.app, kind: kind, id: try routes.id(context), ifMatch: request.headers[.ifMatch]))
    }

    func list(_ kind: Kind, _ request: Request, _ context: Context) async throws -> Response {
        var result = try await routes.search(kind, request, context)
        result.body = result.body.map(SCIM11.listFromV2)
        return routes.respond(result)
    }

    func respond(_ result: SCIMResult) -> Response {
        var result = result
        result.body = result.body.map(SCIM11.fromV2)
        return routes.respond(result)
    }
}
