import Testing
@testable import SCIMKit

@Suite struct JSONTests {
    @Test func roundTrip() throws {
        let text = #"{"a":[1,2.5,-3e-7,true,false,null,"x\"\\\n\u0001é😀"],"b":{"c":{}}}"#
        let v = try JSON.parse(text)
        #expect(try JSON.parse(v.serialized()) == v)
        #expect(v["A"]?.arrayValue?.count == 7)  // member names ignore case
    }

    @Test func writerEscapesExactlyWhatJSONRequires() {
        let v: JSON = ["k\"ey": .string("a\"b\\c\nd\re\tf\u{01}g\u{1F}h/é😀"), "n": .number(-2.5), "i": .number(42), "l": [.null, true, false]]
        #expect(v.serialized() == #"{"k\"ey":"a\"b\\c\nd\re\tf\u0001g\u001fh/é😀","n":-2.5,"i":42,"l":[null,true,false]}"#)
        #expect(v.serializedBytes() == Array(v.serialized().utf8))
    }

    @Test(arguments: [
        "", "{", "[1,]", #"{"a":1,}"#, "01", "1e999", #""\ud800""#, "tru", #"{"a" 1}"#, #"{"a":1,"a":2}"#, "[1] x",
    ])
    func badInputIsInvalidSyntax(_ text: String) {
        #expect { try JSON.parse(text) } throws: { ($0 as? SCIMError)?.status == 400 }
    }

    @Test func invalidUTF8() throws {
        #expect(throws: SCIMError.self) { try JSON.parse([0x22, 0xFF, 0xFE, 0x22]) }
        // After ASCII, with and without escapes: a lone lead byte, a lone continuation byte.
        let ascii: [UInt8] = [0x22, 0x61, 0x62, 0x63]  // "abc
        let escaped: [UInt8] = [0x22, 0x61, 0x5C, 0x6E, 0x62]  // "a\nb
        #expect(throws: SCIMError.self) { try JSON.parse(ascii + [0xC3, 0x22]) }
        #expect(throws: SCIMError.self) { try JSON.parse(escaped + [0x80, 0x22]) }
        // Valid UTF-8 without escapes is kept as it is; pure ASCII too.
        let valid: [UInt8] = Array("[\"jos".utf8) + [0xC3, 0xA9] + Array("\",\"plain\"]".utf8)
        #expect(try JSON.parse(valid) == ["josé", "plain"])
    }

    @Test func nestingIsBounded() {
        #expect(throws: SCIMError.self) { try JSON.parse(String(repeating: "[", count: 100_000)) }
        #expect(throws: SCIMError.self) { try JSON.parse(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)) }
        #expect(throws: Never.self) { try JSON.parse(String(repeating: "[", count: 60) + String(repeating: "]", count: 60)) }
    }
}

@Suite struct QueryTests {
    @Test func projectionHonoursReturned() throws {
        var user = Fixtures.bjensen
        user["password"] = "secret"
        let p = try Projection(attributes: "userName,name.givenName", excludedAttributes: nil)
        let out = p.apply(to: user, schema: CoreSchemas.userResource)
        #expect(Set(out.objectValue!.keys) == ["schemas", "id", "userName", "name"])
        #expect(out["name"] == ["givenName": "Barbara"])
        let all = Projection.default.apply(to: user, schema: CoreSchemas.userResource)
        #expect(all["password"] == nil && all["emails"] != nil)
        let excluded = try Projection(attributes: nil, excludedAttributes: "emails,id").apply(to: user, schema: CoreSchemas.userResource)
        #expect(excluded["emails"] == nil && excluded["id"] != nil)
        let ext = try Projection(attributes: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", excludedAttributes: nil)
            .apply(to: user, schema: CoreSchemas.userResource)
        #expect(ext[CoreSchemas.enterpriseUserID] == ["employeeNumber": "701984"])
    }

    @Test func sortingAndPaging() {
        var users = Fixtures.users
        ResultShaping.sort(&users, by: AttributePath(name: "userName"), order: .ascending, schema: CoreSchemas.userResource)
        #expect(users.map { $0["userName"]!.stringValue! } == ["bjensen@example.com", "Jdoe", "jsmith"])
        ResultShaping.sort(&users, by: AttributePath(name: "title"), order: .descending, schema: CoreSchemas.userResource)
        #expect(users.first?["userName"] == "bjensen@example.com")  // unassigned sorts last either way
        #expect(Array(ResultShaping.page([1, 2, 3, 4, 5], startIndex: 2, count: 2)) == [2, 3])
        #expect(ResultShaping.page([1, 2, 3], startIndex: 1, count: 0).isEmpty)
        #expect(Array(ResultShaping.page([1, 2, 3], startIndex: 0, count: nil)) == [1, 2, 3])
        #expect(ResultShaping.page([1, 2, 3], startIndex: 9, count: 5).isEmpty)
    }

    @Test func queryParameters() throws {
        let params = ["filter": #"userName eq "x""#, "startIndex": "0", "count": "-4", "sortOrder": "DESCENDING"]
        let q = try Query(parameters: { params[$0] })
        #expect(q.startIndex == 1 && q.count == 0 && q.sortOrder == .descending)
        #expect(try Query(json: q.json) == q)
        #expect(throws: SCIMError.self) { try Query(parameters: { $0 == "count" ? "ten" : nil }) }
    }

    @Test func versions() {
        var stored = Fixtures.bjensen  // as a connector without versions gives it
        stored["meta"] = ["created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"]
        let a = ResourceVersion.etag(of: stored)
        var changed = stored
        changed["title"] = "Boss"
        #expect(a.hasPrefix("W/\"") && a != ResourceVersion.etag(of: changed))
        var metaOnly = stored
        metaOnly["meta"] = ["lastModified": "2012-01-01T00:00:00Z"]
        #expect(a == ResourceVersion.etag(of: metaOnly))
        // Stable across agent versions: FNV-1a of the serialization without meta.
        var withoutMeta = stored
        withoutMeta["meta"] = nil
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in withoutMeta.serializedBytes() { hash = (hash ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        let hex = String(hash, radix: 16)
        #expect(a == "W/\"" + String(repeating: "0", count: 16 - hex.count) + hex + "\"")
        #expect(ResourceVersion.ifMatch(a, current: a) && ResourceVersion.ifMatch("*", current: a))
        #expect(!ResourceVersion.ifMatch(#"W/"0000""#, current: a))
    }

    @Test func aConnectorsVersionCoversMembersSoAGroupReadWithoutThemKeepsItsETag() {
        let group: JSON = ["id": "g1", "displayName": "Staff", "members": [["value": "u1"], ["value": "u2"]], "meta": ["version": "7"]]
        var bare = group
        bare["members"] = nil
        #expect(ResourceVersion.etag(ofReadWithoutMembers: bare) == ResourceVersion.etag(of: group))
        var next = group
        next["meta"] = ["version": "8"]
        #expect(ResourceVersion.etag(of: next) != ResourceVersion.etag(of: group))
        var renamed = group
        renamed["displayName"] = "Everyone"
        #expect(ResourceVersion.etag(of: renamed) != ResourceVersion.etag(of: group))
        // Without a connector's version, the members decide: read without them, no version.
        var unversioned = group
        unversioned["meta"] = nil
        var unversionedBare = bare
        unversionedBare["meta"] = nil
        #expect(ResourceVersion.etag(ofReadWithoutMembers: unversionedBare) == nil)
        #expect(ResourceVersion.etag(ofReadWithoutMembers: unversioned) == ResourceVersion.etag(of: unversioned))
        var fewer = unversioned
        fewer["members"] = [["value": "u1"]]
        #expect(ResourceVersion.etag(of: fewer) != ResourceVersion.etag(of: unversioned))
    }

    @Test func errorsRenderAsRFC7644() {
        let e = SCIMError.uniqueness("taken")
        #expect(e.json == ["schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "scimType": "uniqueness", "detail": "taken"])
    }
}

@Suite struct DateTimeTests {
    @Test func millisecondsSurviveParseAndFormat() {
        for text in ["2026-11-29T07:05:12.123Z", "2011-05-13T04:42:34.001Z", "1999-12-31T23:59:59.999Z"] {
            #expect(DateTime.format(DateTime.parse(text)!) == text)
        }
        #expect(DateTime.format(DateTime.parse("2026-11-29T07:05:12.123000Z")!) == "2026-11-29T07:05:12.123Z")
    }

    @Test func projectionSaysWhatItLeavesOut() throws {
        let group = CoreSchemas.groupID
        #expect(try Projection(attributes: nil, excludedAttributes: "members").leavesOut("members", of: group))
        #expect(try Projection(attributes: nil, excludedAttributes: "\(group):members").leavesOut("members", of: group))
        #expect(try !Projection(attributes: nil, excludedAttributes: "members.display").leavesOut("members", of: group))
        #expect(try Projection(attributes: "displayName", excludedAttributes: nil).leavesOut("members", of: group))
        #expect(try !Projection(attributes: "displayName,members.value", excludedAttributes: nil).leavesOut("members", of: group))
        #expect(!Projection.default.leavesOut("members", of: group))
        var q = Query(count: 5)
        q.withoutMembers = true
        #expect(try Query(json: q.json).withoutMembers && !Query(json: Query(count: 5).json).withoutMembers)
    }
}
