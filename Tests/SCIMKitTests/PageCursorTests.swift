import Testing
@testable import SCIMKit

@Suite struct PageCursorTests {
    let query = Query(filter: try! Filter(parsing: "title eq \"odd\""))

    @Test func aCursorRoundTripsAndNamesItsQuery() throws {
        let digest = PageCursor.digest(resourceType: "User", query)
        let cursor = PageCursor(startIndex: 1001, query: digest, issued: 1_800_000_000)
        #expect(cursor.encoded.utf8.allSatisfy { PageCursor.alphabet.contains($0) })
        #expect(try PageCursor.decode(cursor.encoded, digest: digest, now: 1_800_000_100) == cursor)
        // Another filter, sort or resource type is another query.
        #expect(digest != PageCursor.digest(resourceType: "Group", query))
        #expect(digest != PageCursor.digest(resourceType: "User", Query(filter: query.filter, sortBy: AttributePath(parsing: "userName"))))
        #expect(digest != PageCursor.digest(resourceType: "User", Query()))
    }

    @Test func aConnectorsCursorTravelsInTheQueryAndBackInItsReply() throws {
        var q = query
        q.targetCursor = "k1.25000.u-000000001000"
        #expect(try Query(json: q.json).targetCursor == "k1.25000.u-000000001000")
        #expect(try Query(json: query.json).targetCursor == nil)
        var page = SearchResult(resources: [], totalResults: 25000, filtered: true, sorted: true, paged: true)
        page.nextCursor = ""
        #expect(try SearchResult(json: page.json, connector: "c").nextCursor == "")
        // A nextCursor only with a page the connector made, and only as text.
        let unpaged: JSON = ["Resources": [], "filtered": true, "nextCursor": "x"]
        #expect(throws: SCIMError.self) { try SearchResult(json: unpaged, connector: "c") }
        let number: JSON = ["Resources": [], "filtered": true, "paged": true, "totalResults": 0, "nextCursor": 3]
        #expect(throws: SCIMError.self) { try SearchResult(json: number, connector: "c") }
    }

    @Test func badCursorsHaveTheRFCTypes() {
        let digest = PageCursor.digest(resourceType: "User", query)
        func type(_ text: String, now: Int = 1_800_000_000) -> SCIMError.ScimType? {
            do { _ = try PageCursor.decode(text, digest: digest, now: now); return nil } catch { return error.scimType }
        }
        let valid = PageCursor(startIndex: 11, query: digest, issued: 1_800_000_000).encoded
        #expect(type(valid) == nil)
        #expect(type(valid, now: 1_800_000_601) == .expiredCursor)
        #expect(type(PageCursor(startIndex: 11, query: "other", issued: 1_800_000_000).encoded) == .invalidCursor)
        #expect(type(PageCursor(startIndex: 0, query: digest, issued: 1_800_000_000).encoded) == .invalidCursor)
        for garbage in ["", "a", "@@@@", String(repeating: "A", count: 400), PageCursor.base64URL(Array("1.2".utf8)), PageCursor.base64URL([0xff, 0xfe, 0x2e])] {
            #expect(type(garbage) == .invalidCursor, "\(garbage)")
        }
    }

    @Test func base64URLMatchesTheRFC4648Vectors() {
        for (plain, encoded) in [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")] {
            #expect(PageCursor.base64URL(Array(plain.utf8)) == encoded)
            #expect(PageCursor.fromBase64URL(encoded) == Array(plain.utf8))
        }
    }

    @Test func cursorRepliesHaveNoStartIndex() {
        var list = ListResponse(totalResults: 3, startIndex: 1, resources: [], cursors: (next: "n", previous: nil))
        #expect(list.json["nextCursor"] == "n" && list.json["startIndex"] == nil && list.json["previousCursor"] == nil)
        list.cursors = nil
        #expect(list.json["startIndex"] == 1)
    }
}
