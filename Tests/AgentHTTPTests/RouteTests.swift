import AgentCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SCIMKit
import Testing
@testable import AgentHTTP

/// The HTTP front over a fake target: status codes, headers, ETag / If-Match, errors in both
/// dialects, authentication. In seconds, without a plugin or a server.
@Suite struct RouteTests: Sendable {
    let target = FakeTarget()
    let service: SCIMService
    let config: AgentConfig

    init() throws {
        let dir = NSTemporaryDirectory() + "route-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let config = try AgentConfig.parse(
            """
            plugins:
              directory: \(dir)
            server:
              maxBodySize: 4096
            apps:
              hr: { connector: fake, auth: { type: basic, username: okta, password: "s3cret" } }
              open: { connector: fake, auth: { type: none } }
            """, file: dir + "/agent.yaml", environment: [:])
        var logger = Logger(label: "route-tests")
        logger.logLevel = .critical
        let registry = try ConnectorRegistry(config: config, logger: logger)
        registry.serve(app: "hr", target: target, capabilities: FakeTarget.capabilities)
        registry.serve(app: "open", target: target, capabilities: FakeTarget.capabilities)
        service = SCIMService(registry: registry, logger: logger)
        self.config = config
    }

    static let basic: HTTPFields = [.authorization: "Basic " + Data("okta:s3cret".utf8).base64EncodedString()]

    static func json(_ response: TestResponse) throws -> JSON {
        try response.body.withUnsafeReadableBytes { try JSON.parse($0.bindMemory(to: UInt8.self)) }
    }

    static func body(_ json: JSON) -> ByteBuffer { ByteBuffer(bytes: json.serializedBytes()) }

    func test(_ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await Application(router: AgentServer.router(service: service, config: config, logger: Logger(label: "route-tests"))).test(.router, body)
    }

    @Test func createThenReadBack() async throws {
        try await test { client in
            let created = try await client.execute(
                uri: "/apps/open/scim/v2/Users", method: .post, body: Self.body(["userName": "ada", "name": ["givenName": "Ada"]]))
            #expect(created.status == .created)
            let user = try Self.json(created)
            let id = try #require(user["id"]?.stringValue)
            #expect(created.headers[.location] == "http://localhost/apps/open/scim/v2/Users/\(id)")
            #expect(created.headers[.eTag] == user["meta"]?["version"]?.stringValue)
            #expect(created.headers[.contentType] == "application/scim+json")
            // What the target holds: the prepared resource, with its schema.
            #expect(target.stored(.user, id)?["userName"] == "ada")
            #expect(target.stored(.user, id)?["schemas"] == [.string(CoreSchemas.userID)])
            let read = try await client.execute(uri: "/apps/open/scim/v2/Users/\(id)", method: .get)
            #expect(read.status == .ok)
            #expect(read.headers[.eTag] == created.headers[.eTag])
            #expect(try Self.json(read)["name"]?["givenName"] == "Ada")
            let notModified = try await client.execute(uri: "/apps/open/scim/v2/Users/\(id)", method: .get, headers: [.ifNoneMatch: created.headers[.eTag]!])
            #expect(notModified.status == .notModified)
        }
    }

    @Test func staleIfMatchIsRefusedAndNothingChanges() async throws {
        try await test { client in
            let created = try Self.json(try await client.execute(uri: "/apps/open/scim/v2/Users", method: .post, body: Self.body(["userName": "bob"])))
            let id = created["id"]!.stringValue!
            let put = try await client.execute(
                uri: "/apps/open/scim/v2/Users/\(id)", method: .put, headers: [.ifMatch: #"W/"0000000000000000""#],
                body: Self.body(["userName": "bob2"]))
            #expect(put.status == .preconditionFailed)
            #expect(try Self.json(put)["status"] == "412")
            #expect(target.stored(.user, id)?["userName"] == "bob")
            let patch = try await client.execute(
                uri: "/apps/open/scim/v2/Users/\(id)", method: .patch, headers: [.ifMatch: #"W/"0000000000000000""#],
                body: Self.body(["schemas": [.string(PatchRequest.schema)], "Operations": [["op": "replace", "path": "displayName", "value": "B"]]]))
            #expect(patch.status == .preconditionFailed)
            #expect(target.stored(.user, id)?["displayName"] == nil)
        }
    }

    @Test func patchIsGetApplyConditionalReplace() async throws {
        try await test { client in
            let created = try await client.execute(uri: "/apps/open/scim/v2/Users", method: .post, body: Self.body(["userName": "cy"]))
            let id = try Self.json(created)["id"]!.stringValue!
            let patched = try await client.execute(
                uri: "/apps/open/scim/v2/Users/\(id)", method: .patch, headers: [.ifMatch: created.headers[.eTag]!],
                body: Self.body(["schemas": [.string(PatchRequest.schema)], "Operations": [["op": "replace", "path": "active", "value": false]]]))
            #expect(patched.status == .ok)
            #expect(target.stored(.user, id)?["active"] == false)
            #expect(patched.headers[.eTag] != created.headers[.eTag])
            #expect(target.calls == ["create", "get", "replace_if"])  // one get, checked against If-Match, then the conditional replace
        }
    }

    @Test func errorsInEachDialect() async throws {
        try await test { client in
            let v2 = try await client.execute(uri: "/apps/open/scim/v2/Users/nobody", method: .get)
            #expect(v2.status == .notFound)
            let e2 = try Self.json(v2)
            #expect(e2["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"])
            #expect(e2["status"] == "404")
            let v1 = try await client.execute(uri: "/apps/open/scim/v1/Users/nobody", method: .get)
            #expect(v1.status == .notFound)
            #expect(try Self.json(v1)["Errors"]?.arrayValue?.first?["code"] == "404")
            let noApp = try await client.execute(uri: "/apps/payroll/scim/v2/Users", method: .get)
            #expect(noApp.status == .notFound)
            #expect(try Self.json(noApp)["detail"] == "no app named payroll")
            let noEndpoint = try await client.execute(uri: "/apps/open/scim/v2/Widgets", method: .get)
            #expect(noEndpoint.status == .notFound)
            #expect(try Self.json(noEndpoint)["detail"]?.stringValue?.hasPrefix("no such endpoint") == true)
            let badJSON = try await client.execute(uri: "/apps/open/scim/v2/Users", method: .post, body: ByteBuffer(string: "{\"userName\":"))
            #expect(badJSON.status == .badRequest)
            #expect(try Self.json(badJSON)["scimType"] == "invalidSyntax")
            let tooBig = try await client.execute(
                uri: "/apps/open/scim/v2/Users", method: .post, body: Self.body(["userName": .string(String(repeating: "x", count: 5000))]))
            #expect(tooBig.status == .contentTooLarge)
            let readOnly = try await client.execute(uri: "/apps/open/scim/v2/ServiceProviderConfig", method: .put, body: Self.body([:]))
            #expect(readOnly.status == .methodNotAllowed)
            #expect(readOnly.headers[.allow] == "GET")
        }
    }

    @Test func credentialsAreChecked() async throws {
        try await test { client in
            let none = try await client.execute(uri: "/apps/hr/scim/v2/Users", method: .get)
            #expect(none.status == .unauthorized)
            #expect(none.headers[.wwwAuthenticate] == "Basic realm=\"hr\", charset=\"UTF-8\"")
            let wrong = try await client.execute(
                uri: "/apps/hr/scim/v1/Users", method: .get, headers: [.authorization: "Basic " + Data("okta:S3cret".utf8).base64EncodedString()])
            #expect(wrong.status == .unauthorized)
            #expect(try Self.json(wrong)["Errors"] != nil)  // a 1.1 client gets a 1.1 error
            let right = try await client.execute(uri: "/apps/hr/scim/v2/Users", method: .get, headers: Self.basic)
            #expect(right.status == .ok)
            #expect(target.calls == ["search"])  // the refused requests never reached the target
        }
    }

    @Test func discoveryShowsWhatTheTargetDoes() async throws {
        try await test { client in
            let spc = try Self.json(try await client.execute(uri: "/apps/open/scim/v2/ServiceProviderConfig", method: .get))
            #expect(spc["patch"]?["supported"] == true)  // as get + conditional replace
            #expect(spc["etag"]?["supported"] == true)
            let types = try Self.json(try await client.execute(uri: "/apps/open/scim/v2/ResourceTypes", method: .get))
            #expect(types["totalResults"] == 2)
            let missing = try await client.execute(uri: "/apps/open/scim/v2/Schemas/urn:x", method: .get)
            #expect(missing.status == .notFound)
        }
    }

    @Test func listsAreFilteredAndPagedByTheAgent() async throws {
        try await test { client in
            for name in ["u1", "u2", "u3"] {
                _ = try await client.execute(uri: "/apps/open/scim/v2/Users", method: .post, body: Self.body(["userName": .string(name)]))
            }
            let page = try Self.json(try await client.execute(uri: "/apps/open/scim/v2/Users?startIndex=2&count=1", method: .get))
            #expect(page["totalResults"] == 3)
            #expect(page["Resources"]?.arrayValue?.count == 1)
            let one = try Self.json(try await client.execute(uri: "/apps/open/scim/v2/Users?filter=userName%20eq%20%22u2%22", method: .get))
            #expect(one["totalResults"] == 1)
            #expect(one["Resources"]?.arrayValue?.first?["userName"] == "u2")
            let dup = try await client.execute(uri: "/apps/open/scim/v2/Users", method: .post, body: Self.body(["userName": "u1"]))
            #expect(dup.status == .conflict)
            #expect(try Self.json(dup)["scimType"] == "uniqueness")
        }
    }
}

/// `SCIMService` itself, over the fake target.
@Suite struct ServiceTests {
    @Test func aVersionDoesNotDependOnTheHostTheClientUsed() async throws {
        let t = try RouteTests()
        let group = try await t.service.create(app: "open", kind: .group, body: ["displayName": "eng", "members": [["value": "u1", "type": "User"]]],
                                               presentation: Presentation(baseURL: "http://a.example/apps/open/scim/v2"))
        let id = try #require(group.body?["id"]?.stringValue)
        let viaA = try await t.service.get(app: "open", kind: .group, id: id, presentation: Presentation(baseURL: "http://a.example/apps/open/scim/v2"))
        let viaB = try await t.service.get(app: "open", kind: .group, id: id, presentation: Presentation(baseURL: "https://b.example/apps/open/scim/v2"))
        #expect(viaA.body?["members"]?.arrayValue?.first?["$ref"] == "http://a.example/apps/open/scim/v2/Users/u1")
        #expect(viaB.body?["members"]?.arrayValue?.first?["$ref"] == "https://b.example/apps/open/scim/v2/Users/u1")
        #expect(viaA.etag == viaB.etag)
        #expect(viaA.etag == group.etag)
    }

    @Test func concurrentPatchesOfOneUserAllLand() async throws {
        let t = try RouteTests()
        let created = try await t.service.create(app: "open", kind: .user, body: ["userName": "dee"], presentation: Presentation(baseURL: ""))
        let id = try #require(created.body?["id"]?.stringValue)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask {
                    let op: JSON = ["op": "add", "path": "emails", "value": [["value": .string("d\(i)@example.com")]]]
                    _ = try await t.service.patch(app: "open", kind: .user, id: id, body: ["schemas": [.string(PatchRequest.schema)], "Operations": [op]],
                                                  ifMatch: nil, presentation: Presentation(baseURL: ""))
                }
            }
            try await group.waitForAll()
        }
        #expect(t.target.stored(.user, id)?["emails"]?.arrayValue?.count == 20)
    }
}
