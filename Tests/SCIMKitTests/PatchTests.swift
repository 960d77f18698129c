import Testing
@testable import SCIMKit

@Suite struct PatchTests {
    let users = PatchApplier(schema: CoreSchemas.userResource)
    let groups = PatchApplier(schema: CoreSchemas.groupResource)

    func request(_ text: String) throws -> PatchRequest {
        try PatchRequest(json: JSON.parse(#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"# + text + "}"))
    }

    // RFC 7644 §3.5.2.1
    @Test func addMembers() throws {
        let r = try groups.apply(request(#"[{"op":"add","path":"members","value":[{"display":"Babs Jensen","$ref":"https://example.com/v2/Users/2819c223","value":"2819c223"}]}]"#), to: Fixtures.group)
        #expect(r["members"]?.arrayValue?.count == 3)
        #expect(r["members"]?.arrayValue?.last?["value"] == "2819c223")
    }

    @Test func addWithoutPath() throws {
        let r = try users.apply(request(#"[{"op":"add","value":{"emails":[{"value":"babs@jensen.org","type":"home"},{"value":"new@jensen.org","type":"other"}],"nickname":"Babs2"}}]"#), to: Fixtures.bjensen)
        #expect(r["emails"]?.arrayValue?.count == 3)  // the existing home email is not duplicated
        #expect(r["nickName"] == "Babs2")
    }

    /// What a remote SCIM server is sent for the IdPs' forms: RFC 7644's own, applying the same.
    @Test func idpFormsStandardized() throws {
        let ext = CoreSchemas.enterpriseUserID
        let entra = try request(#"[{"op":"Replace","value":{"name.givenName":"Barb","active":"False","\#(ext):department":"R&D"}},"#
            + #"{"op":"replace","path":"active","value":"True"}]"#)
        let standard = entra.standardized(for: CoreSchemas.userResource)
        #expect(standard.json == (try request(#"[{"op":"replace","value":{"active":false}},{"op":"replace","path":"name.givenName","value":"Barb"},"#
            + #"{"op":"replace","path":"\#(ext):department","value":"R&D"},{"op":"replace","path":"active","value":true}]"#)).json)
        #expect(try users.apply(standard, to: Fixtures.bjensen) == (try users.apply(entra, to: Fixtures.bjensen)))

        let removal = try request(#"[{"op":"Remove","path":"members","value":[{"value":"2819c223-7f76-453a-919d-413861904646"},{"value":"902c246b-6245-4190-8e05-00816be7344a"}]}]"#)
        let members = removal.standardized(for: CoreSchemas.groupResource)
        #expect(members.operations.map(\.path?.text) == [#"members[value eq "2819c223-7f76-453a-919d-413861904646" or value eq "902c246b-6245-4190-8e05-00816be7344a"]"#])
        #expect(try groups.apply(members, to: Fixtures.group)["members"]?.arrayValue?.isEmpty ?? true)
    }

    /// Microsoft Entra ID's forms: paths as member names of a path-less value, and the
    /// enterprise manager as a bare id.
    @Test func entraPathsInAValueAndABareManager() throws {
        let ext = CoreSchemas.enterpriseUserID
        let r = try users.apply(request(#"[{"op":"Replace","value":{"name.givenName":"Barb","active":"False","\#(ext):department":"R&D"}},"#
            + #"{"op":"Add","path":"\#(ext):manager","value":"boss-id"}]"#), to: Fixtures.bjensen)
        #expect(r["name"]?["givenName"] == "Barb" && r["name"]?["familyName"] == "Jensen")
        #expect(r["active"] == false)
        #expect(r[ext]?["department"] == "R&D" && r[ext]?["manager"]?["value"] == "boss-id")
        #expect(r[ext]?["employeeNumber"] == Fixtures.bjensen[ext]?["employeeNumber"])  // the rest of the extension stays
        #expect(r.objectValue?.keys.contains { $0 == "name.givenName" || $0.hasSuffix(":department") } == false)
        // An extension's own URN still names its whole object.
        let whole = try users.apply(request(#"[{"op":"replace","value":{"\#(ext)":{"costCenter":"9"}}}]"#), to: Fixtures.bjensen)
        #expect(whole[ext]?["costCenter"] == "9")
    }

    // RFC 7644 §3.5.2.2
    @Test func removeOneMember() throws {
        let r = try groups.apply(request(#"[{"op":"remove","path":"members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"}]"#), to: Fixtures.group)
        #expect(r["members"]?.arrayValue?.map { $0["value"]!.stringValue! } == ["902c246b-6245-4190-8e05-00816be7344a"])
    }

    @Test func removeAllMembers() throws {
        let r = try groups.apply(request(#"[{"op":"remove","path":"members"}]"#), to: Fixtures.group)
        #expect(r["members"] == nil)
    }

    @Test func removeAndAddReplacesMembers() throws {
        let r = try groups.apply(request(#"[{"op":"remove","path":"members"},{"op":"add","path":"members","value":[{"value":"x1"},{"value":"x2"}]}]"#), to: Fixtures.group)
        #expect(r["members"]?.arrayValue?.map { $0["value"]!.stringValue! } == ["x1", "x2"])
    }

    @Test func removeByComplexFilter() throws {
        let r = try users.apply(request(#"[{"op":"remove","path":"emails[type eq \"work\" and value ew \"example.com\"]"}]"#), to: Fixtures.bjensen)
        #expect(r["emails"]?.arrayValue?.map { $0["value"]!.stringValue! } == ["babs@jensen.org"])
    }

    // RFC 7644 §3.5.2.3
    @Test func replaceMembers() throws {
        let r = try groups.apply(request(#"[{"op":"replace","path":"members","value":[{"display":"Babs Jensen","value":"2819c223"},{"display":"James Smith","value":"08e1d05d"}]}]"#), to: Fixtures.group)
        #expect(r["members"]?.arrayValue?.map { $0["value"]!.stringValue! } == ["2819c223", "08e1d05d"])
    }

    @Test func replaceFilteredElement() throws {
        let r = try users.apply(request(#"[{"op":"replace","path":"addresses[type eq \"work\"]","value":{"type":"work","streetAddress":"911 Universal City Plaza","locality":"Hollywood","region":"CA","postalCode":"91608","country":"US","formatted":"911 Universal City Plaza\nHollywood, CA 91608 US","primary":true}}]"#), to: Fixtures.bjensen)
        #expect(r["addresses"]?.arrayValue?.first?["streetAddress"] == "911 Universal City Plaza")
        #expect(r["addresses"]?.arrayValue?.count == 2)
    }

    @Test func replaceSubAttributeOfFilteredElement() throws {
        let r = try users.apply(request(#"[{"op":"replace","path":"addresses[type eq \"work\"].streetAddress","value":"1010 Broadway Ave"}]"#), to: Fixtures.bjensen)
        #expect(r["addresses"]?.arrayValue?.first?["streetAddress"] == "1010 Broadway Ave")
        #expect(r["addresses"]?.arrayValue?.first?["locality"] == "Hollywood")
    }

    @Test func replaceWithoutPath() throws {
        let r = try users.apply(request(#"[{"op":"replace","value":{"emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],"nickName":"Babs"}}]"#), to: Fixtures.bjensen)
        #expect(r["nickName"] == "Babs" && r["emails"]?.arrayValue?.count == 2)
    }

    @Test func oktaDeactivate() throws {
        let r = try users.apply(request(#"[{"op":"Replace","value":{"id":"2819c223-7f76-453a-919d-413861904646","active":"False"}}]"#), to: Fixtures.bjensen)
        #expect(r["active"] == false)
        #expect(r["id"] == Fixtures.bjensen["id"])
    }

    @Test func extensionPaths() throws {
        let r = try users.apply(request(#"[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value","value":"m2"},{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Tours"}]"#), to: Fixtures.jsmith)
        let ext = r[CoreSchemas.enterpriseUserID]
        #expect(ext?["manager"]?["value"] == "m2" && ext?["department"] == "Tours")
        #expect(r["schemas"]?.arrayValue?.contains(.string(CoreSchemas.enterpriseUserID)) == true)
    }

    @Test func missingFilteredElementIsCreatedForEqFilters() throws {
        let r = try users.apply(request(#"[{"op":"replace","path":"phoneNumbers[type eq \"work\"].value","value":"555-1234"}]"#), to: Fixtures.bjensen)
        #expect(r["phoneNumbers"] == [["type": "work", "value": "555-1234"]])
        #expect(throws: SCIMError.self) {
            try users.apply(request(#"[{"op":"replace","path":"emails[value co \"zzz\"].type","value":"x"}]"#), to: Fixtures.bjensen)
        }
    }

    @Test func onePrimaryAtMost() throws {
        let r = try users.apply(request(#"[{"op":"add","path":"emails","value":[{"value":"x@y.z","type":"other","primary":true}]}]"#), to: Fixtures.bjensen)
        #expect(r["emails"]?.arrayValue?.filter { $0["primary"] == true }.count == 1)
        #expect(r["emails"]?.arrayValue?.last?["primary"] == true)
        #expect(throws: SCIMError.self) {
            try users.apply(request(#"[{"op":"replace","path":"emails","value":[{"value":"a","primary":true},{"value":"b","primary":true}]}]"#), to: Fixtures.bjensen)
        }
    }

    @Test func errors() throws {
        func status(_ ops: String, _ resource: JSON = Fixtures.bjensen) -> (Int, SCIMError.ScimType?) {
            do { _ = try users.apply(request(ops), to: resource); return (200, nil) } catch let e as SCIMError { return (e.status, e.scimType) } catch { return (0, nil) }
        }
        #expect(status(#"[{"op":"replace","path":"id","value":"other"}]"#) == (400, .mutability))
        #expect(status(#"[{"op":"remove","path":"userName"}]"#) == (400, .mutability))
        #expect(status(#"[{"op":"remove"}]"#) == (400, .noTarget))
        #expect(status(#"[{"op":"replace","path":"emails[type eq"}]"#) == (400, .invalidPath))
        #expect(status(#"[{"op":"move","path":"title"}]"#) == (400, .invalidValue))
        #expect(status(#"[{"op":"replace","path":"title[type eq \"x\"]","value":"t"}]"#) == (400, .invalidPath))
        #expect(status(#"[{"op":"add","path":"groups","value":[{"value":"g"}]}]"#) == (400, .mutability))
    }

    @Test func tooManyOperations() throws {
        let ops = Array(repeating: #"{"op":"replace","path":"title","value":"x"}"#, count: 100_000).joined(separator: ",")
        #expect { try request("[" + ops + "]") } throws: { ($0 as? SCIMError)?.status == 413 }
    }

    @Test func unknownAttributesSurvive() throws {
        var user = Fixtures.jsmith
        user["urn:example:custom:1.0:User"] = ["badge": "42"]
        user["favouriteColour"] = "green"
        let r = try users.apply(request(#"[{"op":"replace","path":"title","value":"Boss"}]"#), to: user)
        #expect(r["urn:example:custom:1.0:User"]?["badge"] == "42" && r["favouriteColour"] == "green")
    }
}

@Suite struct UnknownAttributeTests {
    /// What a directory keeps: userName, name.familyName, the emails' values, the enterprise
    /// department; everything else is named, and the resource is left without it.
    @Test func whatATargetCannotHoldIsNamed() throws {
        var schema = CoreSchemas.userResource
        schema.core.attributes = schema.core.attributes.compactMap { a in
            switch a.name {
            case "userName", "emails": return a
            case "name": var n = a; n.subAttributes = n.subAttributes.filter { $0.name == "familyName" }; return n
            default: return nil
            }
        }
        schema.extensions = schema.extensions.map { e in var e = e; e.attributes = e.attributes.filter { $0.name == "department" }; return e }
        let ent = CoreSchemas.enterpriseUserID
        let input = try JSON.parse(#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","\#(ent)","urn:okta:onprem_app:1.0:user:custom"],"#
            + #""userName":"a","name":{"familyName":"F","formatted":"x"},"emails":[{"value":"a@b","type":"work","primary":true}],"nickName":"n","#
            + #""\#(ent)":{"department":"D","costCenter":"C"},"urn:okta:onprem_app:1.0:user:custom":{"costCenter":"CC"}}"#)
        let (kept, unknown) = schema.withoutUnknownAttributes(input)
        #expect(unknown == ["name.formatted", "nickName", "\(ent):costCenter", "urn:okta:onprem_app:1.0:user:custom:costCenter"])
        #expect(kept == (try JSON.parse(#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","\#(ent)"],"userName":"a","name":{"familyName":"F"},"#
            + #""emails":[{"value":"a@b","type":"work","primary":true}],"\#(ent)":{"department":"D"}}"#)))
        #expect(CoreSchemas.userResource.withoutUnknownAttributes(Fixtures.bjensen).unknown.isEmpty)
        let held = try [ent, #"emails[type eq "work"].value"#, "urn:okta:onprem_app:1.0:user:custom:costCenter", "nickName"].map { schema.holds(try PatchPath(parsing: $0)) }
        #expect(held == [true, true, false, false])
    }
}
