import Testing

@testable import SCIMKit

@Suite struct SCIM11Tests {
    @Test func resourcesChangeOnlyTheirURNs() throws {
        let v11 = try JSON.parse(#"{"schemas":["urn:scim:schemas:core:1.0","urn:scim:schemas:extension:enterprise:1.0","urn:okta:custom"],"userName":"a","urn:scim:schemas:extension:enterprise:1.0":{"department":"R&D"},"urn:okta:custom":{"x":1}}"#)
        let v2 = SCIM11.toV2(v11, .user)
        #expect(v2["schemas"] == [.string(CoreSchemas.userID), .string(CoreSchemas.enterpriseUserID), "urn:okta:custom"])
        #expect(v2[CoreSchemas.enterpriseUserID]?["department"] == "R&D")
        #expect(v2["urn:okta:custom"]?["x"] == 1 && v2["userName"] == "a")
        #expect(SCIM11.fromV2(v2) == v11)
        #expect(SCIM11.toV2(["schemas": ["urn:scim:schemas:core:1.0"]], .group)["schemas"] == [.string(CoreSchemas.groupID)])
    }

    @Test func listsAndErrors() {
        let list: JSON = ["schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
                          "Resources": [["schemas": [.string(CoreSchemas.userID)], "id": "1"]]]
        let v11 = SCIM11.listFromV2(list)
        #expect(v11["schemas"] == ["urn:scim:schemas:core:1.0"] && v11["totalResults"] == 1)
        #expect(v11["Resources"]?.arrayValue?.first?["schemas"] == ["urn:scim:schemas:core:1.0"])
        #expect(SCIM11.error(.notFound("User 7 not found")) == ["Errors": [["description": "User 7 not found", "code": "404"]]])
    }

    @Test func patchBecomesOperations() throws {
        let body = try JSON.parse(#"{"schemas":["urn:scim:schemas:core:1.0"],"meta":{"attributes":["title"]},"active":false,"nickName":null,"name":{"givenName":"B"},"members":[{"value":"x\"1","operation":"delete"},{"value":"y"}],"urn:scim:schemas:extension:enterprise:1.0":{"department":"D"}}"#)
        let ops = try SCIM11.patchToV2(body, .group, schema: CoreSchemas.groupResource)["Operations"]?.arrayValue ?? []
        #expect(ops.first == ["op": "remove", "path": "title"])  // meta.attributes first
        #expect(ops.contains(["op": "replace", "path": "active", "value": false]))
        #expect(ops.contains(["op": "remove", "path": "nickName"]))
        #expect(ops.contains(["op": "replace", "path": "name", "value": ["givenName": "B"]]))
        #expect(ops.contains(["op": "remove", "path": #"members[value eq "x\"1"]"#]))
        #expect(ops.contains(["op": "add", "path": "members", "value": [["value": "y"]]]))
        #expect(ops.contains { $0["value"]?[CoreSchemas.enterpriseUserID]?["department"] == "D" })
        // The operations parse as a 2.0 PATCH request, quoted member value included.
        let request = try PatchRequest(json: SCIM11.patchToV2(body, .group, schema: CoreSchemas.groupResource))
        #expect(request.operations.count == 7)
    }

    @Test func badPatchBodies() {
        #expect(throws: SCIMError.self) { try SCIM11.patchToV2([1], .user, schema: CoreSchemas.userResource) }
        #expect(throws: SCIMError.self) { try SCIM11.patchToV2(["emails": [["operation": "delete"]]], .user, schema: CoreSchemas.userResource) }
        #expect(throws: SCIMError.self) { try SCIM11.patchToV2(["meta": ["attributes": [1]]], .user, schema: CoreSchemas.userResource) }
    }
}
