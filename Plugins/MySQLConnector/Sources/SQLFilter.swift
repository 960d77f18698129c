import ConnectorSDK

/// SCIM filters as SQL WHERE clauses with `?` parameters, and sorts as ORDER BY. A leaf
/// whose attribute has no column cannot be pushed down; `and` pushes what it can and leaves
/// the rest to the agent.
struct SQLFilter {
    let table: Mapping.Table
    let kind: Capabilities.ResourceKind

    struct Clause {
        var sql: String
        var params: [SQLValue]
        /// The clause selects exactly what the filter selects (not a superset).
        var exact: Bool
    }

    var schema: ResourceSchema { kind.coreSchema }

    /// nil: nothing could be pushed (the agent filters everything).
    func clause(_ f: Filter) -> Clause? {
        switch f {
        case .and(let l, let r):
            switch (clause(l), clause(r)) {
            case (let a?, let b?): return Clause(sql: "(\(a.sql) AND \(b.sql))", params: a.params + b.params, exact: a.exact && b.exact)
            case (let a?, nil): return Clause(sql: a.sql, params: a.params, exact: false)
            case (nil, let b?): return Clause(sql: b.sql, params: b.params, exact: false)
            case (nil, nil): return nil
            }
        case .or(let l, let r):
            guard let a = clause(l), let b = clause(r) else { return nil }
            return Clause(sql: "(\(a.sql) OR \(b.sql))", params: a.params + b.params, exact: a.exact && b.exact)
        case .not(let inner):
            guard let a = clause(inner), a.exact else { return nil }
            // SQL's NULL would drop rows where the attribute is absent; SCIM keeps them.
            return Clause(sql: "NOT COALESCE(\(a.sql), FALSE)", params: a.params, exact: true)
        case .present(let p):
            guard let col = table.column(for: p) else { return nil }
            return widened(Clause(sql: "NOT (\(Self.absent(col)))", params: [], exact: true), for: p, nil, nil)
        case .compare(let p, let op, let value):
            guard table.column(for: p) != nil else { return inAttributes(p, op, value) }
            return compare(p, op, value).map { widened($0, for: p, op, value) }
        case .valuePath(let parent, let inner):
            // What the inner filter says of one value, said of the attribute's values as a
            // whole: `emails[type eq "work" and value eq "x"]` narrows to `emails.value eq "x"`.
            let flat = inner.mapPaths { AttributePath(schema: parent.schema, name: parent.name, subAttribute: $0.name) }
            return clause(flat).map { Clause(sql: $0.sql, params: $0.params, exact: false) }
        }
    }

    /// A column holds one value of a multi-valued attribute (`email`: the primary of `emails`)
    /// and the attributes column keeps the others: rows whose other values might match are
    /// added, and the agent narrows them.
    func widened(_ c: Clause, for p: AttributePath, _ op: Filter.Operator?, _ value: JSON?) -> Clause {
        guard let attributes = table.attributesColumn,
            schema.definition(for: AttributePath(schema: p.schema, name: p.name))?.multiValued == true
        else { return c }
        if let op, let value, let others = inAttributes(p, op, value) {
            return Clause(sql: "(\(c.sql) OR \(others.sql))", params: c.params + others.params, exact: false)
        }
        let inExtension = p.schema.map { !$0.caselessEquals(schema.core.id) } ?? false
        let jsonPath = inExtension ? "$.\(Self.jsonKey(p.schema!)).\(Self.jsonKey(p.name))" : "$.\(Self.jsonKey(p.name))"
        return Clause(sql: "(\(c.sql) OR JSON_EXISTS(\(Mapping.quote(attributes)), ?))", params: c.params + [.string(jsonPath)], exact: false)
    }

    /// For an attribute the attributes column keeps (as JSON text): the rows whose text holds
    /// the value, ignoring case, a superset the agent narrows. Only for string values no JSON
    /// writer escapes, so that the value stands in the text as it is.
    func inAttributes(_ p: AttributePath, _ op: Filter.Operator, _ value: JSON) -> Clause? {
        guard let attributes = table.attributesColumn, op == .eq || op == .co || op == .sw || op == .ew,
            case .string(let s) = value, !s.isEmpty, s.utf8.allSatisfy(Self.standsAsItIsInJSON),
            // Not kept in the attributes column: the key, times, schemas and members.
            !["id", "meta", "schemas", "members"].contains(where: { p.name.caselessEquals($0) }),
            // Nor wholly, when a column holds part of the attribute: the codec fills in the
            // rest (an email read from its column is of type "work").
            !table.columns.contains(where: { sameAttribute($0.path, p) })
        else { return nil }
        return Clause(sql: "CONVERT(\(Mapping.quote(attributes)) USING utf8mb4) COLLATE utf8mb4_unicode_ci LIKE ? ESCAPE '!'",
                      params: [.string("%" + Self.escapeLike(s) + "%")], exact: false)
    }

    /// The same top-level attribute (`emails.value` and `emails.type`), core schema named or not.
    func sameAttribute(_ a: AttributePath, _ b: AttributePath) -> Bool {
        let core = schema.core.id
        return a.name.caselessEquals(b.name) && (a.schema ?? core).caselessEquals(b.schema ?? core)
    }

    /// ASCII letters, digits, space and punctuation that JSON writers leave alone (not `"`
    /// `\` `/`, nor `<` `>` `&` `'`, which some escape).
    static func standsAsItIsInJSON(_ b: UInt8) -> Bool {
        switch b {
        case 0x20...0x7E: return !"\"\\/<>&'".utf8.contains(b)
        default: return false
        }
    }

    /// A member name in a JSON path, quoted.
    static func jsonKey(_ name: String) -> String {
        var out = "\""
        for ch in name {
            if ch == "\"" || ch == "\\" { out.append("\\") }
            out.append(ch)
        }
        return out + "\""
    }

    func compare(_ p: AttributePath, _ op: Filter.Operator, _ value: JSON) -> Clause? {
        guard let col = table.column(for: p) else { return nil }
        let c = Mapping.quote(col)
        let definition = schema.definition(for: p)
        if let a = table.active, col == a.column {
            guard case .bool(let b) = value, op == .eq || op == .ne else { return nil }
            let v = SQLValue.string(b ? a.trueValue : a.falseValue)
            return op == .eq ? Clause(sql: "\(c) = ?", params: [v], exact: true) : Clause(sql: "(\(c) <> ? OR \(c) IS NULL)", params: [v], exact: true)
        }
        var param: SQLValue
        switch value {
        case .null:
            switch op {
            case .eq: return Clause(sql: Self.absent(col), params: [], exact: true)
            case .ne: return Clause(sql: "NOT (\(Self.absent(col)))", params: [], exact: true)
            default: return nil
            }
        case .string(let s):
            let isDate = col == table.created || col == table.lastModified || definition?.type == .dateTime
            if isDate {
                guard let d = RowCodec.sqlDateTime(s) else { return nil }
                param = .string(d)
            } else {
                param = .string(s)
            }
        case .number(let n): param = .string(JSON.number(n).serialized())
        case .bool(let b): param = .string(b ? "1" : "0")
        default: return nil
        }
        // Columns compare under their collation (case-insensitive by default in MariaDB);
        // caseExact attributes compare their bytes.
        let caseExact = definition?.caseExact ?? false || col == table.key
        let lhs = caseExact ? "BINARY \(c)" : c
        switch op {
        case .eq where caseExact:
            // The plain comparison lets MariaDB use the column's index; BINARY makes it exact.
            return Clause(sql: "(\(c) = ? AND \(lhs) = ?)", params: [param, param], exact: true)
        case .eq: return Clause(sql: "\(lhs) = ?", params: [param], exact: true)
        case .ne: return Clause(sql: "(\(lhs) <> ? OR \(c) IS NULL)", params: [param], exact: true)
        case .gt: return Clause(sql: "\(lhs) > ?", params: [param], exact: true)
        case .ge: return Clause(sql: "\(lhs) >= ?", params: [param], exact: true)
        case .lt: return Clause(sql: "\(lhs) < ?", params: [param], exact: true)
        case .le: return Clause(sql: "\(lhs) <= ?", params: [param], exact: true)
        case .co, .sw, .ew:
            guard case .string(let s) = param else { return nil }
            let escaped = Self.escapeLike(s)
            let pattern = op == .co ? "%\(escaped)%" : op == .sw ? "\(escaped)%" : "%\(escaped)"
            return Clause(sql: "\(lhs) LIKE ? ESCAPE '!'", params: [.string(pattern)], exact: true)
        }
    }

    /// ORDER BY terms for sorting by `path`, or nil when no column holds it. As the agent
    /// sorts: resources without a value (NULL or empty) last in either order, strings
    /// ignoring case unless the attribute is caseExact.
    func orderBy(_ path: AttributePath, descending: Bool) -> String? {
        guard let col = table.column(for: path) else { return nil }
        let caseExact = schema.definition(for: path)?.caseExact ?? false || col == table.key
        return "\(Self.absent(col)), \(caseExact ? "BINARY " : "")\(Mapping.quote(col)) \(descending ? "DESC" : "ASC")"
    }

    /// The column holds no value: NULL, or an empty string (RFC 7643 §2.5). Other types
    /// compare as text, so a 0 (an inactive user's TINYINT) or a date is a value.
    static func absent(_ column: String) -> String {
        let c = Mapping.quote(column)
        return "(\(c) IS NULL OR CAST(\(c) AS CHAR) = '')"
    }

    /// LIKE's wildcards in a value are matched literally.
    static func escapeLike(_ s: String) -> String {
        var out = ""
        for ch in s {
            if ch == "%" || ch == "_" || ch == "!" { out.append("!") }
            out.append(ch)
        }
        return out
    }
}
