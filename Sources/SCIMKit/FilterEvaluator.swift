/// Evaluates filters over resources, with the comparison rules of RFC 7644 §3.4.2.2:
/// strings ignore case unless the attribute is caseExact, dateTimes compare as instants,
/// a complex attribute without a sub-attribute compares its `value`.
public struct FilterEvaluator: Sendable {
    public let schema: ResourceSchema

    public init(schema: ResourceSchema) { self.schema = schema }

    public func matches(_ filter: Filter, _ resource: JSON) -> Bool {
        switch filter {
        case .and(let l, let r): return matches(l, resource) && matches(r, resource)
        case .or(let l, let r): return matches(l, resource) || matches(r, resource)
        case .not(let f): return !matches(f, resource)
        case .present(let path):
            // A complex attribute is present when it holds a non-empty node (RFC 7644
            // §3.4.2.2), `value` or not: `name pr` holds for a name with only a givenName.
            guard path.subAttribute == nil else { return values(at: path, in: resource).contains(where: Self.hasValue) }
            return attribute(path, in: resource).map(Self.hasValue) ?? false
        case .compare(let path, let op, let operand):
            let definition = schema.definition(for: path)
            return Self.compare(values(at: path, in: resource), op, operand, definition)
        case .valuePath(let path, let inner):
            guard let top = attribute(path, in: resource) else { return false }
            let elements = top.arrayValue ?? [top]
            let innerSchema = elementSchema(for: path)
            let evaluator = FilterEvaluator(schema: innerSchema)
            return elements.contains { evaluator.matches(inner, $0) }
        }
    }

    /// A schema whose core attributes are the sub-attributes of `path`, for value-path filters.
    func elementSchema(for path: AttributePath) -> ResourceSchema {
        let subs = schema.definition(for: path.parent)?.subAttributes ?? []
        return ResourceSchema(core: Schema(id: "", name: path.name, description: "", attributes: subs))
    }

    /// The top-level attribute a path names, looking inside an extension object for URN paths.
    public func attribute(_ path: AttributePath, in resource: JSON) -> JSON? {
        if let urn = path.schema, !schema.core.id.caselessEquals(urn) {
            return resource[urn]?[path.name]
        }
        return resource[path.name]
    }

    /// All values a path selects: multi-valued attributes contribute every element.
    public func values(at path: AttributePath, in resource: JSON) -> [JSON] {
        guard let top = attribute(path, in: resource) else { return [] }
        let elements = top.arrayValue ?? [top]
        guard let sub = path.subAttribute else {
            return elements.map { e in e.objectValue.map { $0["value"] ?? .null } ?? e }
        }
        return elements.compactMap { $0[sub] }
    }

    /// A value that is not absent: not null or empty, or a node holding such a value.
    static func hasValue(_ value: JSON) -> Bool {
        switch value {
        case .object(let o): o.contains { hasValue($0.value) }
        case .array(let a): a.contains(where: hasValue)
        default: !value.isUnassigned
        }
    }

    static func compare(_ values: [JSON], _ op: Filter.Operator, _ operand: JSON, _ definition: AttributeDefinition?) -> Bool {
        if op == .ne { return !values.contains { compareOne($0, .eq, operand, definition) } }
        return values.contains { compareOne($0, op, operand, definition) }
    }

    static func compareOne(_ value: JSON, _ op: Filter.Operator, _ operand: JSON, _ definition: AttributeDefinition?) -> Bool {
        switch (value, operand) {
        case (_, .null):
            return op == .eq ? value.isUnassigned : false
        case (.string(let a), .string(let b)):
            if definition?.type == .dateTime || (definition == nil && op.isOrdering),
                let x = DateTime.parse(a), let y = DateTime.parse(b)
            {
                return ordered(x, y, op)
            }
            return compareStrings(a, b, op, caseExact: definition?.caseExact ?? false)
        case (.number(let a), .number(let b)):
            return ordered(a, b, op)
        case (.bool(let a), .bool(let b)):
            return op == .eq && a == b
        case (.bool(let a), .string(let b)) where b.caselessEquals("true") || b.caselessEquals("false"):
            return op == .eq && a == b.caselessEquals("true")
        default:
            return false
        }
    }

    static func ordered<T: Comparable>(_ a: T, _ b: T, _ op: Filter.Operator) -> Bool {
        switch op {
        case .eq: a == b
        case .ne: a != b
        case .gt: a > b
        case .ge: a >= b
        case .lt: a < b
        case .le: a <= b
        case .co, .sw, .ew: false
        }
    }

    static func compareStrings(_ a: String, _ b: String, _ op: Filter.Operator, caseExact: Bool) -> Bool {
        if op == .eq && !caseExact { return a.caselessEquals(b) || (!a.utf8.allSatisfy { $0 < 128 } && a.lowercased() == b.lowercased()) }
        let x = caseExact ? a : a.lowercased()
        let y = caseExact ? b : b.lowercased()
        switch op {
        case .co: return x.contains(y)
        case .sw: return x.hasPrefix(y)
        case .ew: return x.hasSuffix(y)
        default: return ordered(x, y, op)
        }
    }
}

extension Filter.Operator {
    var isOrdering: Bool { self == .gt || self == .ge || self == .lt || self == .le }
}
