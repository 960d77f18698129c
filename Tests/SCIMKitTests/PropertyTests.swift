import PropertyBased
import Testing
@testable import SCIMKit

/// Random filters from a seed, so the property library shrinks the seed and reports it.
struct RandomFilters {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state = state &+ 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func pick<T>(_ items: [T]) -> T { items[Int(next() % UInt64(items.count))] }

    mutating func path(relative: Bool = false) -> AttributePath {
        let names = ["userName", "title", "emails", "name", "active", "meta", "x-y_z", "$ref"]
        let subs: [String?] = [nil, nil, "value", "givenName", "lastModified"]
        let schemas: [String?] = relative ? [nil] : [nil, nil, nil, CoreSchemas.enterpriseUserID, "urn:example:ext:1.0:Thing"]
        return AttributePath(schema: pick(schemas), name: pick(names), subAttribute: relative ? nil : pick(subs))
    }

    mutating func value() -> JSON {
        switch next() % 6 {
        case 0: .bool(next() % 2 == 0)
        case 1: .null
        case 2: .number(Double(Int64(bitPattern: next()) % 1_000_000) / 8)
        case 3: .string(pick(["", "a b", "Research and Development", "quote \" and \\ back", "é😀", "tab\there", "x) or (y"]))
        default: .string(String(next() % 99_999))
        }
    }

    mutating func filter(depth: Int, relative: Bool = false) -> Filter {
        if depth == 0 || next() % 3 == 0 {
            return next() % 5 == 0 ? .present(path(relative: relative)) : .compare(path(relative: relative), pick(Filter.Operator.allCases), value())
        }
        switch next() % (relative ? 3 : 4) {
        case 0: return .and(filter(depth: depth - 1, relative: relative), filter(depth: depth - 1, relative: relative))
        case 1: return .or(filter(depth: depth - 1, relative: relative), filter(depth: depth - 1, relative: relative))
        case 2: return .not(filter(depth: depth - 1, relative: relative))
        default: return .valuePath(AttributePath(name: pick(["emails", "addresses", "members"])), filter(depth: depth - 1, relative: true))
        }
    }
}

@Suite struct PropertyTests {
    @Test func renderedFiltersParseBackToThemselves() async {
        await propertyCheck(count: 1000, input: Gen.uint64(in: 0...UInt64.max)) { seed in
            var g = RandomFilters(seed: seed)
            let f = g.filter(depth: 5)
            #expect((try? Filter(parsing: f.description)) == f, "\(f)")
            #expect((try? Filter(json: f.json)) == f)
        }
    }

    @Test func parsingArbitraryInputNeverTraps() async {
        let alphabet = Array(#"()[]" andornotpreqcoswgtle.:$_-\ue\u00\"1e9truefalsenull"#)
        await propertyCheck(count: 2000, input: Gen.uint64(in: 0...UInt64.max), Gen.int(in: 0...200)) { seed, length in
            var g = RandomFilters(seed: seed)
            let text = String((0..<length).map { _ in g.pick(alphabet) })
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            _ = try? Filter(parsing: text)
            _ = try? JSON.parse(bytes)
            _ = try? JSON.parse(text)
            _ = try? PatchPath(parsing: text)
            if let f = try? Filter(parsing: text) {
                _ = FilterEvaluator(schema: CoreSchemas.userResource).matches(f, Fixtures.bjensen)
            }
        }
    }

    @Test func evaluatingAndPatchingArbitraryInputNeverTraps() async {
        await propertyCheck(count: 500, input: Gen.uint64(in: 0...UInt64.max)) { seed in
            var g = RandomFilters(seed: seed)
            let f = g.filter(depth: 4)
            _ = FilterEvaluator(schema: CoreSchemas.userResource).matches(f, Fixtures.bjensen)
            let op = g.pick(["add", "remove", "replace", "Replace"])
            let path = g.pick([g.path().description, "emails[\(g.filter(depth: 1, relative: true))].value", "members[value eq \"x\"]", ""])
            let value = g.pick([g.value(), ["value": g.value(), "primary": .bool(true)], [g.value()], ["title": g.value()]])
            let body: JSON = ["schemas": [.string(PatchRequest.schema)], "Operations": [["op": .string(op), "path": .string(path), "value": value]]]
            if let request = try? PatchRequest(json: body) {
                _ = try? PatchApplier(schema: CoreSchemas.userResource).apply(request, to: Fixtures.bjensen)
            }
        }
    }
}
