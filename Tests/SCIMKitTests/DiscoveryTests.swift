import Testing
@testable import SCIMKit

/// The builder's output against the shapes of RFC 7643 §8.5–8.7 for an equivalent description.
@Suite struct DiscoveryTests {
    let full = Capabilities(
        users: .init(operations: .all, schema: CoreSchemas.userResource, sort: true, passwordWritable: true, activeWritable: true, lastModifiedFilter: true),
        groups: .init(operations: .all, schema: CoreSchemas.groupResource, sort: true),
        groupMemberDeltas: true,
        authenticationSchemes: [["type": "httpbasic", "name": "HTTP Basic", "description": "d", "primary": true]])

    @Test func serviceProviderConfigMatchesSection8_5() {
        let spc = Discovery(capabilities: full, baseURL: "https://example.com/v2").serviceProviderConfig()
        #expect(spc["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
        for key in ["patch", "bulk", "filter", "changePassword", "sort", "etag"] {
            #expect(spc[key]?["supported"]?.boolValue != nil, "\(key).supported")
        }
        #expect(spc["bulk"]?["maxOperations"] == 1000 && spc["bulk"]?["maxPayloadSize"] == 1_048_576)
        #expect(spc["filter"]?["maxResults"] == 1000)
        #expect(spc["authenticationSchemes"]?.arrayValue?.first?["type"] == "httpbasic")
        #expect(spc["meta"]?["location"] == "https://example.com/v2/ServiceProviderConfig")
    }

    @Test func resourceTypesMatchSection8_6() {
        let types = Discovery(capabilities: full, baseURL: "https://example.com/v2").resourceTypes
        let rfcUser: JSON = [
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "User", "name": "User", "endpoint": "/Users",
            "description": "User Account", "schema": "urn:ietf:params:scim:schemas:core:2.0:User",
            "schemaExtensions": [["schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": false]],
            "meta": ["location": "https://example.com/v2/ResourceTypes/User", "resourceType": "ResourceType"],
        ]
        #expect(types.first == rfcUser)
        #expect(types.last?["endpoint"] == "/Groups")
    }

    @Test func schemasMatchSection8_7() throws {
        let schemas = Discovery(capabilities: full, baseURL: "https://example.com/v2").schemas
        #expect(schemas.map(\.id) == [CoreSchemas.userID, CoreSchemas.enterpriseUserID, CoreSchemas.groupID])
        let user = schemas[0].json()
        let userName = user["attributes"]?.arrayValue?.first { $0["name"] == "userName" }
        #expect(userName == ["name": "userName", "type": "string", "multiValued": false, "description": "userName", "required": true,
                             "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "server"])
        let password = user["attributes"]?.arrayValue?.first { $0["name"] == "password" }
        #expect(password?["mutability"] == "writeOnly" && password?["returned"] == "never")
        let emails = user["attributes"]?.arrayValue?.first { $0["name"] == "emails" }
        #expect(emails?["multiValued"] == true && emails?["subAttributes"]?.arrayValue?.map { $0["name"]! } == ["value", "display", "type", "primary"])
        // What /Schemas publishes reads back as the same schema.
        #expect(try Schema(json: user) == schemas[0])
    }

    @Test func whatTheTargetCannotDoIsNotAdvertised() {
        let limited = Capabilities(users: .init(operations: [.create, .get, .search], schema: CoreSchemas.userResource), groups: nil)
        let d = Discovery(capabilities: limited, baseURL: "")
        #expect(d.resourceTypes.map { $0["id"] } == ["User"])
        #expect(d.serviceProviderConfig()["sort"]?["supported"] == false)
        #expect(d.serviceProviderConfig()["patch"]?["supported"] == false)
        #expect(limited.oktaCapabilities == ["PUSH_NEW_USERS", "IMPORT_NEW_USERS", "IMPORT_PROFILE_UPDATES"])
        #expect(full.oktaCapabilities == [
            "PUSH_NEW_USERS", "PUSH_PENDING_USERS", "PUSH_PROFILE_UPDATES", "PUSH_PASSWORD_UPDATES", "PUSH_USER_DEACTIVATION",
            "REACTIVATE_USERS", "IMPORT_NEW_USERS", "IMPORT_PROFILE_UPDATES", "OPP_SCIM_INCREMENTAL_IMPORTS", "GROUP_PUSH",
        ])
        let okta = Discovery(capabilities: full, baseURL: "").serviceProviderConfig(includeOktaExtension: true)
        #expect(okta[Discovery.oktaProviderConfigSchema]?["userManagementCapabilities"]?.arrayValue?.count == 10)
    }
}
