import ConnectorSDK

/// Resources ↔ rows under a mapping. Mapped attributes go to their columns; with an
/// attributes column, everything else is kept there as JSON, so nothing is lost.
struct RowCodec {
    let table: Mapping.Table
    let kind: Capabilities.ResourceKind

    var schemaID: String { kind.schemaID }

    /// The value a resource holds at a mapped path: `emails.value` reads the primary email
    /// (or the first one).
    static func read(_ path: AttributePath, in resource: JSON) -> JSON? {
        let container = path.schema.flatMap { s in CoreSchemas.userResource.schema(withID: s) == nil || s != CoreSchemas.userID ? resource[s] : resource } ?? resource
        guard let top = container[path.name] else { return nil }
        guard let sub = path.subAttribute else { return top }
        if let list = top.arrayValue {
            let chosen = list.first { $0["primary"]?.boolValue == true } ?? list.first
            return chosen?[sub]
        }
        return top[sub]
    }

    /// Column values for INSERT/UPDATE, in `table.columns` order, then active, password,
    /// attributes (only the columns this mapping has).
    func columnValues(_ resource: JSON) throws(SCIMError) -> [(String, SQLValue)] {
        var out: [(String, SQLValue)] = []
        for c in table.columns {
            switch Self.read(c.path, in: resource) {
            case .string(let s)?: out.append((c.column, .string(s)))
            case .number(let n)?: out.append((c.column, .string(JSON.number(n).serialized())))
            case .bool(let b)?: out.append((c.column, .string(b ? "1" : "0")))
            case nil, .null?: out.append((c.column, .null))
            default: throw .invalidValue("\(c.path) must be a single value to be stored in column \(c.column)")
            }
        }
        if let a = table.active {
            switch resource["active"] {
            case .bool(let b)?: out.append((a.column, .string(b ? a.trueValue : a.falseValue)))
            default:
                // No active attribute: NULL where the column allows it; otherwise the column's
                // default on INSERT and its current value on UPDATE.
                if a.nullable { out.append((a.column, .null)) }
            }
        }
        if let attributes = table.attributesColumn {
            let rest = remainder(resource)
            out.append((attributes, rest.isEmpty ? .null : .string(JSON.object(rest).serialized())))
        }
        return out
    }

    /// What no column holds: kept in the attributes column. A group's members are in the
    /// membership table, never here (a copy here went stale with the first member change, and
    /// made a 100,000-member group's row megabytes).
    func remainder(_ resource: JSON) -> JSONObject {
        guard case .object(var o) = resource else { return JSONObject() }
        for k in ["id", "meta", "schemas", "password"] { o[k] = nil }
        if kind == .group { o["members"] = nil }
        if table.active != nil { o["active"] = nil }
        for c in table.columns {
            if let urn = c.path.schema, !urn.caselessEquals(schemaID) {
                guard case .object(var ext)? = o[urn] else { continue }
                strip(c.path, from: &ext)
                o[urn] = ext.isEmpty ? nil : .object(ext)
            } else {
                strip(c.path, from: &o)
            }
        }
        return o
    }

    private func strip(_ path: AttributePath, from o: inout JSONObject) {
        guard let sub = path.subAttribute else { o[path.name] = nil; return }
        switch o[path.name] {
        case .object(var inner)?:
            inner[sub] = nil
            o[path.name] = inner.isEmpty ? nil : .object(inner)
        case .array(var list)?:
            guard !list.isEmpty else { o[path.name] = nil; return }
            let i = list.firstIndex { $0["primary"]?.boolValue == true } ?? 0
            list[i][sub] = nil
            if list.count == 1, list[0] == ["type": "work", "primary": true] || list[0].objectValue?.isEmpty == true {
                o[path.name] = nil
            } else {
                o[path.name] = .array(list)
            }
        default: break
        }
    }

    /// A resource from a row selected with `table.selectColumns`.
    func resource(_ row: [String?]) -> JSON {
        var o: JSONObject = ["schemas": [.string(schemaID)], "id": .string(row[0] ?? "")]
        var index = 1
        var extra = JSONObject()
        var placed: [(AttributePath, String)] = []
        for c in table.columns {
            if let v = row[index] { placed.append((c.path, v)) }
            index += 1
        }
        if let a = table.active {
            if let v = row[index] { o["active"] = .bool(v == a.trueValue || (a.trueValue == "1" && v.lowercased() == "true")) }
            index += 1
        }
        var created: String?, lastModified: String?
        if table.attributesColumn != nil {
            if let text = row[index], case .object(let parsed)? = try? JSON.parse(text) { extra = parsed }
            if kind == .group { extra["members"] = nil }  // a stale copy written by an earlier version
            index += 1
        }
        if table.created != nil { created = row[index]; index += 1 }
        if table.lastModified != nil { lastModified = row[index]; index += 1 }
        for m in extra { o[m.key] = m.value }
        for (path, value) in placed { place(path, .string(value), in: &o) }
        if case .array(let schemas)? = extra["schemas"] { o["schemas"] = .array(schemas) }
        var meta = JSONObject()
        if let created { meta["created"] = .string(Self.rfc3339(created)) }
        if let lastModified { meta["lastModified"] = .string(Self.rfc3339(lastModified)) }
        o["meta"] = .object(meta)
        o.moveToFront(["schemas", "id"])
        return .object(o)
    }

    private func place(_ path: AttributePath, _ value: JSON, in o: inout JSONObject) {
        if let urn = path.schema, !urn.caselessEquals(schemaID) {
            var ext = o[urn]?.objectValue ?? JSONObject()
            place(AttributePath(name: path.name, subAttribute: path.subAttribute), value, in: &ext)
            o[urn] = .object(ext)
            var schemas = o["schemas"]?.arrayValue ?? []
            if !schemas.contains(.string(urn)) { schemas.append(.string(urn)); o["schemas"] = .array(schemas) }
            return
        }
        guard let sub = path.subAttribute else { o[path.name] = value; return }
        let def = kind.coreSchema.definition(for: path.parent)
        if def?.multiValued == true {
            var list = o[path.name]?.arrayValue ?? []
            if list.isEmpty { list = [["type": "work", "primary": true]] }
            let i = list.firstIndex { $0["primary"]?.boolValue == true } ?? 0
            var element = list[i].objectValue ?? JSONObject()
            element[sub] = value
            element.moveToFront([sub])
            list[i] = .object(element)
            o[path.name] = .array(list)
        } else {
            var inner = o[path.name]?.objectValue ?? JSONObject()
            inner[sub] = value
            o[path.name] = .object(inner)
        }
    }

    /// `2026-11-29 04:45:24.576` (UTC, as written) → `2026-11-29T04:45:24.576Z`.
    static func rfc3339(_ sql: String) -> String {
        guard sql.count >= 19 else { return sql }
        return String(sql.prefix(10)) + "T" + String(sql.dropFirst(11)) + "Z"
    }

    /// An RFC 3339 instant as a DATETIME(3) literal value in UTC, or nil.
    static func sqlDateTime(_ text: String) -> String? {
        DateTime.parse(text).map(sqlDateTime(seconds:))
    }

    static func sqlDateTime(seconds: Double) -> String {
        let iso = DateTime.format(seconds)  // 2026-11-29T04:45:24.576Z
        return String(iso.prefix(10)) + " " + String(iso.dropFirst(11).dropLast())
    }

    static func now() -> String { sqlDateTime(seconds: currentTime()) }
}
