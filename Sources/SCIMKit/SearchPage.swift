/// For a target that answers only part of a query (a connector's, a remote's): the resources
/// it selected are offered one at a time, as they arrive; the rest of the filter is applied with
/// the agent's own evaluator, and only what the reply needs is kept. With the order settled
/// (no `sortBy`, or the target sorted), that is the requested page and a count of all
/// matches, so a reply stays a page however large the target; otherwise every match, for
/// the agent to sort, up to `maxUnsorted`.
public struct SearchPage {
    public static let maxUnsorted = 10_000

    let filter: Filter?
    let evaluator: FilterEvaluator
    let sorted: Bool
    let skip: Int
    let count: Int
    let sortBy: AttributePath?
    let noun: String
    var kept: [JSON] = []
    var matches = 0

    /// `filtered`: the target applied the whole filter; `sorted`: it returned resources in
    /// the requested order (or none was requested). `noun` names the resources in errors.
    public init(_ query: Query, filtered: Bool, sorted: Bool, schema: ResourceSchema, noun: String) {
        filter = filtered ? nil : query.filter
        evaluator = FilterEvaluator(schema: schema)
        self.sorted = sorted
        skip = query.startIndex - 1
        count = query.count ?? 1000
        sortBy = query.sortBy
        self.noun = noun
    }

    public mutating func offer(_ resource: JSON) throws(SCIMError) {
        if let filter, !evaluator.matches(filter, resource) { return }
        matches += 1
        if sorted {
            if matches > skip && kept.count < count { kept.append(resource) }
        } else {
            guard kept.count < Self.maxUnsorted else {
                throw SCIMError(status: 400, scimType: .tooMany, detail: "more than \(Self.maxUnsorted) \(noun) to sort by \(sortBy.map { "\($0)" } ?? "an attribute") "
                    + "the target cannot sort by: sort by another attribute, or narrow the filter")
            }
            kept.append(resource)
        }
    }

    /// The same, for a resource that costs something to make (a group whose members are
    /// looked up in a directory): made only when it is needed, to be filtered or kept.
    public mutating func offer(_ make: () throws -> JSON) throws {
        guard filter == nil && sorted else { return try offer(try make()) }
        matches += 1
        if matches > skip && kept.count < count { kept.append(try make()) }
    }

    /// What was kept: the page (sorted), or every match for the agent to sort.
    public var resources: [JSON] { kept }
    /// How many matched, when the kept resources are the page; nil when they are every match.
    public var totalResults: Int? { sorted ? matches : nil }
    /// The kept resources are the requested page, in order.
    public var isPage: Bool { sorted }
}
