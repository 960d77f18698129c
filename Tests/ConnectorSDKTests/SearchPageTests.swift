import Testing
import ConnectorSDK

@Suite struct SearchPageTests {
    let users: [JSON] = (1...50).map { ["userName": .string("user\($0)"), "title": $0 % 2 == 0 ? "even" : "odd"] }

    func names(_ r: SearchResult) -> [String] { r.resources.compactMap { $0["userName"]?.stringValue } }

    @Test func keepsThePageAndCountsEveryMatch() throws {
        var page = SearchPage(Query(filter: try Filter(parsing: #"title eq "EVEN""#), startIndex: 3, count: 2), filtered: false, sorted: true,
                              schema: CoreSchemas.userResource, noun: "users")
        for u in users { try page.offer(u) }
        let r = page.result
        #expect(names(r) == ["user6", "user8"])
        #expect(r.totalResults == 25 && r.filtered && r.sorted && r.paged)
    }

    @Test func makesOnlyWhatThePageNeeds() throws {
        var made = 0
        var page = SearchPage(Query(startIndex: 11, count: 5), filtered: true, sorted: true, schema: CoreSchemas.userResource, noun: "users")
        for u in users { try page.offer { made += 1; return u } }
        #expect(names(page.result) == ["user11", "user12", "user13", "user14", "user15"] && page.result.totalResults == 50)
        #expect(made == 5)
        // A filter left to the page needs every resource made.
        made = 0
        var filtered = SearchPage(Query(filter: try Filter(parsing: "title pr"), count: 5), filtered: false, sorted: true, schema: CoreSchemas.userResource, noun: "users")
        for u in users { try filtered.offer { made += 1; return u } }
        #expect(made == 50 && filtered.result.totalResults == 50)
    }

    @Test func unsortedKeepsEveryMatchForTheAgentUpToALimit() throws {
        let query = Query(sortBy: AttributePath(name: "title"), count: 5)
        var page = SearchPage(query, filtered: true, sorted: false, schema: CoreSchemas.userResource, noun: "users")
        for u in users { try page.offer(u) }
        #expect(page.result.resources.count == 50 && page.result.totalResults == nil && !page.result.sorted && !page.result.paged)
        var big = SearchPage(query, filtered: true, sorted: false, schema: CoreSchemas.userResource, noun: "users")
        #expect {
            for i in 0...SearchPage.maxUnsorted { try big.offer(["userName": .string("u\(i)")]) }
        } throws: { error in
            let e = error as! SCIMError
            return e.status == 400 && e.scimType == .tooMany && e.detail.contains("title")
        }
    }
}
