/// A SCIM filter (RFC 7644 §3.4.2.2) as a tree.
public indirect enum Filter: Sendable, Equatable {
    public enum Operator: String, Sendable, CaseIterable {
        case eq, ne, co, sw, ew, gt, ge, lt, le
    }

    case compare(AttributePath, Operator, JSON)
    case present(AttributePath)
    case and(Filter, Filter)
    case or(Filter, Filter)
    case not(Filter)
    /// `attr[filter]`: the inner filter's paths are relative to each value of `attr`.
    case valuePath(AttributePath, Filter)

    /// Every path the filter reads, value-path members as `attr.sub`.
    public var paths: [AttributePath] {
        switch self {
        case .compare(let p, _, _), .present(let p): [p]
        case .and(let l, let r), .or(let l, let r): l.paths + r.paths
        case .not(let f): f.paths
        case .valuePath(let p, let f):
            f.paths.map { AttributePath(schema: p.schema, name: p.name, subAttribute: $0.name) }
        }
    }

    /// The same filter with every path spelled as the schema spells it.
    public func canonicalized(by schema: ResourceSchema) -> Filter {
        switch self {
        case .compare(let p, let op, let v): .compare(schema.canonical(p), op, v)
        case .present(let p): .present(schema.canonical(p))
        case .and(let l, let r): .and(l.canonicalized(by: schema), r.canonicalized(by: schema))
        case .or(let l, let r): .or(l.canonicalized(by: schema), r.canonicalized(by: schema))
        case .not(let f): .not(f.canonicalized(by: schema))
        case .valuePath(let p, let f):
            .valuePath(schema.canonical(p), f.mapPaths { sub in
                let full = schema.canonical(AttributePath(schema: p.schema, name: p.name, subAttribute: sub.name))
                return AttributePath(name: full.subAttribute ?? sub.name, subAttribute: sub.subAttribute)
            })
        }
    }

    /// Rejects a dateTime attribute compared with something that is not an RFC 3339
    /// instant: `meta.lastModified gt "yesterday"` would select nothing, and an incremental
    /// import would silently miss every change.
    public func checkDateTimes(in schema: ResourceSchema) throws(SCIMError) {
        switch self {
        case .compare(let p, _, let v):
            guard schema.definition(for: p)?.type == .dateTime, !v.isNull else { return }
            guard case .string(let s) = v, DateTime.parse(s) != nil else {
                throw .invalidFilter("\(p) is a dateTime: compare it with an RFC 3339 instant such as \"2026-01-31T08:00:00Z\", not \(v.serialized())")
            }
        case .and(let l, let r), .or(let l, let r):
            try l.checkDateTimes(in: schema)
            try r.checkDateTimes(in: schema)
        case .not(let f):
            try f.checkDateTimes(in: schema)
        case .present, .valuePath:
            return
        }
    }

    /// The same filter with `transform` applied to each path (a value filter's own paths stay as they are).
    public func mapPaths(_ transform: (AttributePath) -> AttributePath) -> Filter {
        switch self {
        case .compare(let p, let op, let v): .compare(transform(p), op, v)
        case .present(let p): .present(transform(p))
        case .and(let l, let r): .and(l.mapPaths(transform), r.mapPaths(transform))
        case .or(let l, let r): .or(l.mapPaths(transform), r.mapPaths(transform))
        case .not(let f): .not(f.mapPaths(transform))
        case .valuePath(let p, let f): .valuePath(transform(p), f)
        }
    }
}

// MARK: - Text

extension Filter: CustomStringConvertible {
    /// Canonical text; `Filter(parsing: f.description) == f`.
    public var description: String {
        switch self {
        case .compare(let p, let op, let v): "\(p) \(op.rawValue) \(v.serialized())"
        case .present(let p): "\(p) pr"
        case .and(let l, let r):
            "\(l.isOr ? "(\(l))" : "\(l)") and \(r.isBinary ? "(\(r))" : "\(r)")"
        case .or(let l, let r): "\(l) or \(r.isOr ? "(\(r))" : "\(r)")"
        case .not(let f): "not (\(f))"
        case .valuePath(let p, let f): "\(p)[\(f)]"
        }
    }

    var isOr: Bool { if case .or = self { true } else { false } }
    var isBinary: Bool {
        switch self {
        case .and, .or: true
        default: false
        }
    }
}

// MARK: - JSON AST (the form connectors receive)

extension Filter {
    /// `{"op":"eq","path":"userName","value":"bjensen"}`, `{"op":"pr","path":"title"}`,
    /// `{"op":"and","filters":[A,B]}`, `{"op":"not","filter":A}`,
    /// `{"op":"valuePath","path":"emails","filter":A}` — documented in `scim_connector.h`.
    public var json: JSON {
        switch self {
        case .compare(let p, let op, let v): ["op": .string(op.rawValue), "path": .string(p.description), "value": v]
        case .present(let p): ["op": "pr", "path": .string(p.description)]
        case .and(let l, let r): ["op": "and", "filters": [l.json, r.json]]
        case .or(let l, let r): ["op": "or", "filters": [l.json, r.json]]
        case .not(let f): ["op": "not", "filter": f.json]
        case .valuePath(let p, let f): ["op": "valuePath", "path": .string(p.description), "filter": f.json]
        }
    }

    public init(json: JSON, depth: Int = 0) throws(SCIMError) {
        guard depth < FilterParser.maxDepth else { throw .invalidFilter("filter AST nested too deeply") }
        guard let op = json["op"]?.stringValue?.lowercased() else { throw .invalidFilter("filter AST node without \"op\"") }
        func path() throws(SCIMError) -> AttributePath {
            guard let text = json["path"]?.stringValue, let p = AttributePath(parsing: text) else {
                throw .invalidFilter("filter AST node \"\(op)\" without a valid \"path\"")
            }
            return p
        }
        switch op {
        case "pr": self = .present(try path())
        case "and", "or":
            guard let parts = json["filters"]?.arrayValue, parts.count >= 2 else {
                throw .invalidFilter("\"\(op)\" needs at least two filters")
            }
            var result = try Filter(json: parts[0], depth: depth + 1)
            for part in parts.dropFirst() {
                let next = try Filter(json: part, depth: depth + 1)
                result = op == "and" ? .and(result, next) : .or(result, next)
            }
            self = result
        case "not":
            guard let inner = json["filter"] else { throw .invalidFilter("\"not\" without a filter") }
            self = .not(try Filter(json: inner, depth: depth + 1))
        case "valuepath":
            guard let inner = json["filter"] else { throw .invalidFilter("\"valuePath\" without a filter") }
            self = .valuePath(try path(), try Filter(json: inner, depth: depth + 1))
        default:
            guard let o = Operator(rawValue: op) else { throw .invalidFilter("unknown filter operator \"\(op)\"") }
            guard let value = json["value"] else { throw .invalidFilter("\"\(op)\" without a value") }
            switch value {
            case .array, .object: throw .invalidFilter("a comparison value must be a string, number, boolean or null")
            default: self = .compare(try path(), o, value)
            }
        }
    }
}
