/// What a list request asks for (RFC 7644 §3.4.2), independent of where it came from.
public struct Query: Sendable, Equatable {
    public enum SortOrder: String, Sendable { case ascending, descending }

    public var filter: Filter?
    public var sortBy: AttributePath?
    public var sortOrder: SortOrder
    /// 1-based, as the RFC has it.
    public var startIndex: Int
    /// nil: the server's default page size.
    public var count: Int?
    /// Groups may come without their members: the client will not see them and the filter
    /// does not read them (a hint to connectors for which members are costly to read).
    public var withoutMembers = false
    /// RFC 9865: the `cursor` parameter, when the client pages by cursor ("" for the first
    /// page); nil when it pages by `startIndex`. Turned into `startIndex` by `PageCursor`.
    public var cursor: String?
    /// The target's own cursor for this page, when the target pages by cursor and the client
    /// does too ("" for the first page); set by the agent from the client's cursor.
    public var targetCursor: String?

    public init(filter: Filter? = nil, sortBy: AttributePath? = nil, sortOrder: SortOrder = .ascending, startIndex: Int = 1, count: Int? = nil) {
        self.filter = filter
        self.sortBy = sortBy
        self.sortOrder = sortOrder
        self.startIndex = max(1, startIndex)
        self.count = count.map { max(0, $0) }
    }

    /// From query parameters (GET) or a SearchRequest body (POST /.search), by name.
    public init(parameters: (String) -> String?) throws(SCIMError) {
        var filter: Filter?
        if let f = parameters("filter"), !f.isEmpty { filter = try Filter(parsing: f) }
        var sortBy: AttributePath?
        if let s = parameters("sortBy"), !s.isEmpty {
            guard let p = AttributePath(parsing: s) else { throw .invalidValue("sortBy \"\(s)\" is not an attribute path") }
            sortBy = p
        }
        var order = SortOrder.ascending
        if let o = parameters("sortOrder"), !o.isEmpty {
            guard let parsed = SortOrder(rawValue: o.lowercased()) else { throw .invalidValue("sortOrder must be ascending or descending") }
            order = parsed
        }
        func integer(_ name: String) throws(SCIMError) -> Int? {
            guard let text = parameters(name), !text.isEmpty else { return nil }
            guard let n = Int(text) else { throw .invalidValue("\(name) must be an integer") }
            return n
        }
        let cursor = parameters("cursor")
        if cursor != nil, parameters("startIndex") != nil {
            throw .invalidValue("give either startIndex (index paging) or cursor (RFC 9865 cursor paging), not both")
        }
        self.init(filter: filter, sortBy: sortBy, sortOrder: order, startIndex: try integer("startIndex") ?? 1, count: try integer("count"))
        self.cursor = cursor
    }

    /// The form connectors receive (documented in `scim_connector.h`).
    public var json: JSON {
        var o: JSONObject = ["startIndex": .number(Double(startIndex))]
        if let filter { o["filter"] = filter.json }
        if let count { o["count"] = .number(Double(count)) }
        if let sortBy { o["sortBy"] = .string(sortBy.description) }
        o["sortOrder"] = .string(sortOrder.rawValue)
        if withoutMembers { o["withoutMembers"] = true }
        if let targetCursor { o["cursor"] = .string(targetCursor) }
        return .object(o)
    }

    public init(json: JSON) throws(SCIMError) {
        self.init(
            filter: try json["filter"].flatMap { f throws(SCIMError) in f.isNull ? nil : try Filter(json: f) },
            sortBy: json["sortBy"]?.stringValue.flatMap { AttributePath(parsing: $0) },
            sortOrder: json["sortOrder"]?.stringValue.flatMap(SortOrder.init(rawValue:)) ?? .ascending,
            startIndex: json["startIndex"]?.intValue ?? 1, count: json["count"]?.intValue)
        withoutMembers = json["withoutMembers"]?.boolValue ?? false
        targetCursor = json["cursor"]?.stringValue
    }
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.9), honouring `returned`.
public struct Projection: Sendable, Equatable {
    public var attributes: [AttributePath]
    public var excludedAttributes: [AttributePath]

    public init(attributes: [AttributePath] = [], excludedAttributes: [AttributePath] = []) {
        self.attributes = attributes
        self.excludedAttributes = excludedAttributes
    }

    public init(attributes: String?, excludedAttributes: String?) throws(SCIMError) {
        func list(_ text: String?) throws(SCIMError) -> [AttributePath] {
            guard let text, !text.isEmpty else { return [] }
            var out: [AttributePath] = []
            for part in text.split(separator: ",") {
                let trimmed = part.trimmingCharacters(in: " ")
                guard let p = AttributePath(parsing: trimmed) else { throw .invalidValue("\"\(trimmed)\" is not an attribute path") }
                out.append(p)
            }
            return out
        }
        self.init(attributes: try list(attributes), excludedAttributes: try list(excludedAttributes))
    }

    public static let `default` = Projection()

    /// The projection leaves out this top-level attribute of the schema `schemaID`.
    public func leavesOut(_ name: String, of schemaID: String) -> Bool {
        func names(_ p: AttributePath) -> Bool { p.name.caselessEquals(name) && (p.schema?.caselessEquals(schemaID) ?? true) }
        if !attributes.isEmpty { return !attributes.contains(where: names) }
        return excludedAttributes.contains { names($0) && $0.subAttribute == nil }
    }

    /// The resource as a client may see it.
    public func apply(to resource: JSON, schema: ResourceSchema) -> JSON {
        guard case .object(let o) = resource else { return resource }
        if attributes.isEmpty && excludedAttributes.isEmpty { return Self.withoutHidden(o, schema: schema) }
        var out = JSONObject()
        for m in o {
            if m.key.caselessEquals("schemas") { out[m.key] = m.value; continue }
            if let ext = schema.extensions.first(where: { $0.id.caselessEquals(m.key) }) {
                guard case .object(let extMembers) = m.value else { continue }
                var e = JSONObject()
                for em in extMembers {
                    if let v = project(em.value, AttributePath(schema: ext.id, name: em.key), ext.attribute(em.key)) { e[em.key] = v }
                }
                if !e.isEmpty || attributes.contains(where: { $0.schema == nil && $0.name.caselessEquals(ext.id) }) { out[m.key] = .object(e) }
                continue
            }
            let def = schema.core.attribute(m.key) ?? CommonAttributes.attribute(m.key)
            if let v = project(m.value, AttributePath(name: m.key), def) { out[m.key] = v }
        }
        return .object(out)
    }

    /// The default projection, the common case: every attribute but those returned `never`
    /// or only on `request` (`ResourceSchema.hidden`); the resource is not copied when it
    /// holds none of them.
    static func withoutHidden(_ o: JSONObject, schema: ResourceSchema) -> JSON {
        let hidden = schema.hidden
        var out = o
        if !hidden.core.isEmpty, o.contains(where: { m in hidden.core.contains { $0.caselessEquals(m.key) } }) {
            out.removeAll { m in hidden.core.contains { $0.caselessEquals(m.key) } }
        }
        for ext in schema.extensions {
            guard let value = out[ext.id] else { continue }
            guard case .object(var members) = value else { out[ext.id] = nil; continue }
            guard let names = hidden.extensions.first(where: { $0.id == ext.id })?.names else { continue }
            members.removeAll { m in names.contains { $0.caselessEquals(m.key) } }
            out[ext.id] = .object(members)
        }
        return .object(out)
    }

    private func project(_ value: JSON, _ path: AttributePath, _ def: AttributeDefinition?) -> JSON? {
        let returned = def?.returned ?? .default
        if returned == .never { return nil }
        if returned == .always { return value }
        let requested = attributes.filter { matchesTop($0, path) }
        if !attributes.isEmpty {
            if requested.isEmpty { return nil }
            if requested.contains(where: { $0.subAttribute == nil }) { return value }
            return keepSubAttributes(value, requested.compactMap(\.subAttribute), def)
        }
        if returned == .request { return nil }
        let excluded = excludedAttributes.filter { matchesTop($0, path) }
        if excluded.contains(where: { $0.subAttribute == nil }) { return nil }
        if !excluded.isEmpty { return dropSubAttributes(value, excluded.compactMap(\.subAttribute), def) }
        return value
    }

    private func matchesTop(_ requested: AttributePath, _ path: AttributePath) -> Bool {
        guard requested.name.caselessEquals(path.name) else {
            // `attributes=urn:...:enterprise:2.0:User` asks for the whole extension.
            if let urn = path.schema, requested.schema == nil { return requested.description.caselessEquals(urn) }
            if let urn = path.schema, let rs = requested.schema, "\(rs):\(requested.name)".caselessEquals(urn) { return true }
            return false
        }
        switch (requested.schema, path.schema) {
        case (nil, nil): return true
        case (let a?, let b?): return a.caselessEquals(b)
        case (let a?, nil): return a.caselessEquals(CoreSchemas.userID) || a.caselessEquals(CoreSchemas.groupID)
        case (nil, _?): return false
        }
    }

    private func keepSubAttributes(_ value: JSON, _ subs: [String], _ def: AttributeDefinition?) -> JSON? {
        func keep(_ o: JSONObject) -> JSONObject {
            var r = JSONObject()
            for m in o {
                let sd = def?.subAttribute(m.key)
                if sd?.returned == .always || subs.contains(where: { $0.caselessEquals(m.key) }), sd?.returned != .never { r[m.key] = m.value }
            }
            return r
        }
        switch value {
        case .object(let o): let r = keep(o); return r.isEmpty ? nil : .object(r)
        case .array(let a): return .array(a.compactMap { $0.objectValue.map { .object(keep($0)) } })
        default: return value
        }
    }

    private func dropSubAttributes(_ value: JSON, _ subs: [String], _ def: AttributeDefinition?) -> JSON? {
        func drop(_ o: JSONObject) -> JSONObject {
            var r = o
            r.removeAll { m in subs.contains(where: { $0.caselessEquals(m.key) }) && def?.subAttribute(m.key)?.returned != .always }
            return r
        }
        switch value {
        case .object(let o): return .object(drop(o))
        case .array(let a): return .array(a.map { $0.objectValue.map { .object(drop($0)) } ?? $0 })
        default: return value
        }
    }
}

extension Substring {
    func trimmingCharacters(in character: Character) -> Substring {
        var s = self
        while s.first == character { s.removeFirst() }
        while s.last == character { s.removeLast() }
        return s
    }
}

/// Sorting and paging done by the host where a connector does not.
public enum ResultShaping {
    public static func sort(_ resources: inout [JSON], by path: AttributePath, order: Query.SortOrder, schema: ResourceSchema) {
        let evaluator = FilterEvaluator(schema: schema)
        let caseExact = schema.definition(for: path)?.caseExact ?? false
        func key(_ r: JSON) -> JSON? {
            let values = evaluator.values(at: path, in: r)
            if let top = evaluator.attribute(path.parent, in: r)?.arrayValue,
                let primary = top.first(where: { $0["primary"]?.boolValue == true })
            {
                return path.subAttribute.flatMap { primary[$0] } ?? primary["value"]
            }
            return values.first { !$0.isUnassigned }
        }
        let keyed = resources.map { (key($0), $0) }
        let sorted = keyed.enumerated().sorted { a, b in
            switch (a.element.0, b.element.0) {
            case (nil, nil): return a.offset < b.offset
            case (nil, _): return false  // unassigned values sort last either way
            case (_, nil): return true
            case (let x?, let y?):
                let c = compare(x, y, caseExact: caseExact)
                if c == 0 { return a.offset < b.offset }
                return order == .ascending ? c < 0 : c > 0
            }
        }
        resources = sorted.map(\.element.1)
    }

    static func compare(_ a: JSON, _ b: JSON, caseExact: Bool) -> Int {
        switch (a, b) {
        case (.number(let x), .number(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
        case (.string(let x), .string(let y)):
            if let dx = DateTime.parse(x), let dy = DateTime.parse(y) { return dx < dy ? -1 : (dx > dy ? 1 : 0) }
            let l = caseExact ? x : x.lowercased()
            let r = caseExact ? y : y.lowercased()
            return l < r ? -1 : (l > r ? 1 : 0)
        default: return 0
        }
    }

    /// The page `startIndex`/`count` select.
    public static func page<T>(_ items: [T], startIndex: Int, count: Int?) -> ArraySlice<T> {
        let start = min(items.count, max(0, startIndex - 1))
        let end = count.map { min(items.count, start + max(0, $0)) } ?? items.count
        return items[start..<end]
    }
}

/// The ListResponse message (RFC 7644 §3.4.2).
public struct ListResponse: Sendable {
    public static let schema = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    public var totalResults: Int
    public var startIndex: Int
    public var resources: [JSON]
    /// RFC 9865, on a cursor-paged reply: the next page's cursor (nil on the last page) and
    /// the previous page's; such a reply has no `startIndex`.
    public var cursors: (next: String?, previous: String?)?

    public init(totalResults: Int, startIndex: Int, resources: [JSON], cursors: (next: String?, previous: String?)? = nil) {
        self.totalResults = totalResults
        self.startIndex = startIndex
        self.resources = resources
        self.cursors = cursors
    }

    public var json: JSON {
        var o: JSONObject = [
            "schemas": [.string(Self.schema)], "totalResults": .number(Double(totalResults)),
            "itemsPerPage": .number(Double(resources.count)),
        ]
        if let cursors {
            if let next = cursors.next { o["nextCursor"] = .string(next) }
            if let previous = cursors.previous { o["previousCursor"] = .string(previous) }
        } else {
            o["startIndex"] = .number(Double(startIndex))
        }
        o["Resources"] = .array(resources)
        return .object(o)
    }
}

/// RFC 9865 cursors as the agent issues them: where the next page starts, for which query,
/// and when the cursor was issued, in an opaque URL-safe string. They hold no state on the
/// agent, so any agent serving the app (two behind a relay, one restarted) continues an
/// import another began; a cursor altered by hand can only ask for a page of its own query.
public struct PageCursor: Sendable, Equatable {
    /// Seconds a cursor stays valid after it is issued (`pagination.cursorTimeout`).
    public static let timeout = 600

    /// The 1-based index of the page's first resource.
    public var startIndex: Int
    /// A digest of the query the cursor pages (resource type, filter, sort).
    public var query: String
    /// Seconds since 1970 when it was issued.
    public var issued: Int
    /// The target's own cursor for the page, when the target pages by cursor (a remote server).
    public var target: String?

    public init(startIndex: Int, query: String, issued: Int, target: String? = nil) {
        self.startIndex = startIndex
        self.query = query
        self.issued = issued
        self.target = target
    }

    /// The digest a query's cursors carry: what must not change between its pages.
    public static func digest(resourceType: String, _ query: Query) -> String {
        let text = [resourceType, query.filter.map { "\($0)" } ?? "", query.sortBy.map { "\($0)" } ?? "", query.sortOrder.rawValue].joined(separator: "\u{1f}")
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return String(hash, radix: 36)
    }

    public var encoded: String {
        let bytes = Array("\(startIndex).\(query).\(issued)\(target.map { "." + $0 } ?? "")".utf8)
        return Self.base64URL(bytes)
    }

    /// The cursor a request gave: its page, or 400 `invalidCursor` / `expiredCursor`.
    public static func decode(_ text: String, digest: String, now: Int) throws(SCIMError) -> PageCursor {
        guard let bytes = fromBase64URL(text), let plain = String(validating: bytes, as: UTF8.self) else {
            throw SCIMError(status: 400, scimType: .invalidCursor, detail: "the cursor is not one this server issued: send cursor empty for the first page, then each reply's nextCursor")
        }
        let parts = plain.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count >= 3, let start = Int(parts[0]), start >= 1, let issued = Int(parts[2]) else {
            throw SCIMError(status: 400, scimType: .invalidCursor, detail: "the cursor is not one this server issued: send cursor empty for the first page, then each reply's nextCursor")
        }
        guard parts[1] == digest else {
            throw SCIMError(status: 400, scimType: .invalidCursor, detail: "the cursor belongs to another query: keep the filter and sort of the first page, or start again with an empty cursor")
        }
        guard now - issued <= timeout, issued <= now + 60 else {
            throw SCIMError(status: 400, scimType: .expiredCursor, detail: "the cursor has expired: ask for each next page within \(timeout) s (cursorTimeout), or start again with an empty cursor")
        }
        return PageCursor(startIndex: start, query: String(parts[1]), issued: issued, target: parts.count == 4 ? String(parts[3]) : nil)
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func base64URL(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var v = UInt32(bytes[i]) << 16
            if n > 1 { v |= UInt32(bytes[i + 1]) << 8 }
            if n > 2 { v |= UInt32(bytes[i + 2]) }
            for k in 0...n { out.append(alphabet[Int((v >> (18 - 6 * UInt32(k))) & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func fromBase64URL(_ text: String) -> [UInt8]? {
        var values: [UInt32] = []
        for c in text.utf8 {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            values.append(UInt32(v))
        }
        guard values.count % 4 != 1, values.count <= 4096 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            let n = min(4, values.count - i)
            var v: UInt32 = 0
            for k in 0..<4 { v = v << 6 | (k < n ? values[i + k] : 0) }
            for k in 0..<(n - 1) { out.append(UInt8((v >> (16 - 8 * UInt32(k))) & 0xff)) }
            i += 4
        }
        return out
    }
}
