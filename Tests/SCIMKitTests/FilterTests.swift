import Testing
@testable import SCIMKit

@Suite struct FilterTests {
    let evaluator = FilterEvaluator(schema: CoreSchemas.userResource)

    func selected(_ text: String) throws -> [String] {
        let filter = try Filter(parsing: text)
        return Fixtures.users.filter { evaluator.matches(filter, $0) }.compactMap { $0["userName"]?.stringValue }
    }

    /// Every example of RFC 7644 §3.4.2.2, with what it selects from the fixtures.
    @Test(arguments: [
        (#"userName eq "bjensen@example.com""#, ["bjensen@example.com"]),
        (#"name.familyName co "O'Malley""#, ["jsmith"]),
        (#"userName sw "J""#, ["jsmith", "Jdoe"]),
        (#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#, ["jsmith", "Jdoe"]),
        ("title pr", ["bjensen@example.com"]),
        (#"meta.lastModified gt "2011-05-13T04:42:34Z""#, ["Jdoe"]),
        (#"meta.lastModified ge "2011-05-13T04:42:34Z""#, ["bjensen@example.com", "jsmith", "Jdoe"]),
        (#"meta.lastModified lt "2011-05-13T04:42:34Z""#, []),
        (#"meta.lastModified le "2011-05-13T04:42:34Z""#, ["bjensen@example.com", "jsmith"]),
        (#"title pr and userType eq "Employee""#, ["bjensen@example.com"]),
        (#"title pr or userType eq "Intern""#, ["bjensen@example.com", "jsmith"]),
        (#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#, ["bjensen@example.com"]),
        (#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#, ["bjensen@example.com"]),
        (#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#, ["Jdoe"]),
        (#"userType eq "Employee" and (emails.type eq "work")"#, ["bjensen@example.com"]),
        (#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#, ["bjensen@example.com"]),
        (#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#, ["bjensen@example.com", "jsmith"]),
    ])
    func rfcExamples(_ text: String, _ expected: [String]) throws {
        #expect(try selected(text) == expected)
    }

    /// Microsoft Entra ID filters on a sub-attribute after a value filter, outside RFC 7644's
    /// grammar: `emails[type eq "work"].value eq "x"` means `emails[type eq "work" and value eq "x"]`.
    @Test func entraSubAttributeAfterValueFilter() throws {
        let f = try Filter(parsing: #"emails[type eq "work"].value eq "bjensen@example.com""#)
        #expect(f == (try Filter(parsing: #"emails[type eq "work" and value eq "bjensen@example.com"]"#)))
        #expect(try selected(#"emails[type eq "work"].value eq "BJENSEN@example.com""#) == ["bjensen@example.com"])
        #expect(try selected(#"emails[type eq "home"].value eq "bjensen@example.com""#) == [])
        #expect(try selected(#"emails[type eq "home"].value pr"#) == ["bjensen@example.com", "jsmith"])
        #expect(try selected(#"userName sw "b" and not (emails[type eq "work"].value ew ".org")"#) == ["bjensen@example.com"])
        #expect(f.description == #"emails[type eq "work" and value eq "bjensen@example.com"]"#)
    }

    /// `pr` on a complex attribute holds when it has any non-empty node, `value` or not.
    @Test func presentComplexAttributes() throws {
        #expect(try selected("name pr") == ["bjensen@example.com", "jsmith"])
        #expect(try selected("not (name pr)") == ["Jdoe"])
        #expect(try selected("emails pr") == ["bjensen@example.com", "jsmith"])
        let empty = JSON.object(["userName": "x", "name": ["givenName": "", "familyName": nil], "emails": [["type": "work"]]])
        #expect(!evaluator.matches(try Filter(parsing: "name pr"), empty))
        #expect(evaluator.matches(try Filter(parsing: "emails pr"), empty))  // a node with a type
        #expect(!evaluator.matches(try Filter(parsing: "emails.value pr"), empty))
    }

    /// A dateTime compared with anything but an RFC 3339 instant is an invalid filter.
    @Test func dateTimeComparisonsNeedInstants() throws {
        let schema = CoreSchemas.userResource
        for text in [#"meta.lastModified gt "yesterday""#, #"meta.created ge "2026-13-45T00:00:00Z""#, "meta.lastModified gt 1700000000",
                     #"userName eq "x" or not (meta.lastModified lt "soon")"#] {
            #expect(throws: SCIMError.self, "\(text)") { try Filter(parsing: text).checkDateTimes(in: schema) }
        }
        for text in [#"meta.lastModified gt "2026-01-31T08:00:00Z""#, #"meta.created le "2026-01-31T08:00:00.123+02:00""#,
                     #"title gt "yesterday""#, "meta.created pr", "meta.created eq null"] {
            try Filter(parsing: text).checkDateTimes(in: schema)
        }
    }

    @Test func precedenceNotOverAndOverOr() throws {
        let f = try Filter(parsing: #"a pr or b pr and not (c pr)"#)
        #expect(f == .or(.present(.init(name: "a")), .and(.present(.init(name: "b")), .not(.present(.init(name: "c"))))))
    }

    @Test func spacesInsideStringsAreNotSplitOn() throws {
        let group = Fixtures.json(#"{"displayName":"Research and Development"}"#)
        let f = try Filter(parsing: #"displayName eq "Research and Development""#)
        #expect(FilterEvaluator(schema: CoreSchemas.groupResource).matches(f, group))
    }

    @Test func caseRules() throws {
        #expect(try selected(#"USERNAME EQ "JDOE""#) == ["Jdoe"])  // names and operators ignore case
        #expect(try selected(#"id eq "A1""#) == [])  // id is caseExact
        #expect(try selected(#"id eq "a1""#) == ["jsmith"])
    }

    @Test func literalsAndEscapes() throws {
        #expect(try Filter(parsing: #"x eq "a\"b\\c\u00e9""#) == .compare(.init(name: "x"), .eq, .string("a\"b\\cé")))
        #expect(try Filter(parsing: "active eq true") == .compare(.init(name: "active"), .eq, .bool(true)))
        #expect(try Filter(parsing: "x eq null") == .compare(.init(name: "x"), .eq, .null))
        #expect(try Filter(parsing: "n ge -1.5e3") == .compare(.init(name: "n"), .ge, .number(-1500)))
        #expect(try Filter(parsing: "active eq false").description == "active eq false")
    }

    @Test func urnPathsSplitAtTheLastColon() throws {
        let f = try Filter(parsing: #"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#)
        guard case .compare(let p, _, _) = f else { Issue.record("not a comparison"); return }
        #expect(p.schema == CoreSchemas.enterpriseUserID && p.name == "manager" && p.subAttribute == "value")
        #expect(evaluator.matches(f, Fixtures.bjensen))
    }

    @Test(arguments: [
        "", "userName", "userName eq", #"userName xx "a""#, #"userName eq "a"#, "(title pr", "title pr)", "not title pr",
        #"emails[type eq "work""#, #"emails[type eq "work"][value pr]"#, "a pr and", "x eq tru", "x eq 1e999", "x.y.z pr",
        #"emails[type eq "work"].value"#, #"emails[type eq "work"]. eq "x""#, #"emails[type eq "work"].value.x eq "x""#,
        #"emails[type eq "work"].urn:x:value eq "x""#, #"emails[type eq "work"].value[primary eq true]"#,
        // Found by the fuzzer: a backslash as the last byte of an unterminated string trapped.
        #"userName eq "Ali\"#, #"a eq "x" or b[c eq "d\"#,
    ])
    func parseErrorsAreInvalidFilter(_ text: String) {
        #expect {
            try Filter(parsing: text)
        } throws: { error in
            let e = error as! SCIMError
            return e.status == 400 && e.scimType == .invalidFilter && e.detail.contains("position") || text.isEmpty
        }
    }

    @Test func boundedInput() {
        let deep = String(repeating: "(", count: 10_000) + "a pr" + String(repeating: ")", count: 10_000)
        #expect(throws: SCIMError.self) { try Filter(parsing: deep) }
        let huge = #"a eq ""# + String(repeating: "x", count: 1 << 20) + #"""#
        #expect(throws: SCIMError.self) { try Filter(parsing: huge) }
    }

    @Test func jsonASTRoundTrip() throws {
        let f = try Filter(parsing: #"userType eq "Employee" and emails[type eq "work" and value co "@example.com"] or not (title pr)"#)
        #expect(try Filter(json: f.json) == f)
        #expect(try Filter(json: JSON.parse(f.json.serialized())) == f)
        #expect(f.json["op"] == "or")
    }

    @Test func canonicalizationSpellsNamesAsTheSchema() throws {
        let f = try Filter(parsing: #"USERNAME eq "x" and EMAILS[TYPE eq "work"]"#).canonicalized(by: CoreSchemas.userResource)
        #expect(f.description == #"userName eq "x" and emails[type eq "work"]"#)
    }
}
