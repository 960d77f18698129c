/// A search reply between a connector and the agent: what the target did (filter, sort,
/// page) and what is left to the agent. The connector SDK writes it (`json`), the agent reads
/// it back (`init(json:connector:)`); `scim_connector.h` defines each flag.
public struct SearchResult: Sendable {
    public var resources: [JSON]
    public var totalResults: Int?
    public var filtered: Bool
    public var sorted: Bool
    public var paged: Bool
    /// A target that paged by its own cursor (a remote server's RFC 9865 cursor, or a
    /// connector's, given the query's `targetCursor`): the next page's, "" after the last;
    /// nil when it paged by index.
    public var nextCursor: String?

    public init(resources: [JSON], totalResults: Int? = nil, filtered: Bool, sorted: Bool = false, paged: Bool = false) {
        self.resources = resources
        self.totalResults = totalResults
        self.filtered = filtered
        self.sorted = sorted
        self.paged = paged
    }

    public var json: JSON {
        var o: JSONObject = [
            "Resources": .array(resources), "filtered": .bool(filtered), "sorted": .bool(sorted), "paged": .bool(paged),
        ]
        if let totalResults { o["totalResults"] = .number(Double(totalResults)) }
        if let nextCursor { o["nextCursor"] = .string(nextCursor) }
        return .object(o)
    }

    /// A connector's reply, checked against the rules in `scim_connector.h`.
    public init(json: JSON, connector: String) throws(SCIMError) {
        guard let resources = json["Resources"]?.arrayValue else {
            throw SCIMError(status: 502, detail: "connector \(connector) search reply has no Resources array")
        }
        self.resources = resources
        filtered = json["filtered"]?.boolValue ?? false
        sorted = json["sorted"]?.boolValue ?? false
        paged = json["paged"]?.boolValue ?? false
        totalResults = json["totalResults"]?.intValue
        if paged && (!filtered || totalResults == nil) {
            throw SCIMError(status: 502, detail: "connector \(connector) paged a search it did not filter, or gave no totalResults")
        }
        if let next = json["nextCursor"] {
            guard let text = next.stringValue, paged else {
                throw SCIMError(status: 502, detail: "connector \(connector) gave a nextCursor that is not a string, or with a search it did not page")
            }
            nextCursor = text
        }
    }
}

extension SearchPage {
    /// The reply for the agent: the page with the count of matches, or every match unsorted.
    public var result: SearchResult {
        SearchResult(resources: resources, totalResults: totalResults, filtered: true, sorted: isPage, paged: isPage)
    }
}
