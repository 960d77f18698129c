/// Brings a resource a client sent into the schema's shape: attribute names spelled as the
/// schema spells them, booleans sent as strings (`"False"`) made booleans, and values of the
/// wrong type rejected with `invalidValue`. Unknown attributes pass through untouched.
public enum ResourceNormalizer {
    public static func normalize(_ resource: JSON, schema: ResourceSchema) throws(SCIMError) -> JSON {
        guard case .object(let input) = resource else { throw .invalidValue("a resource must be a JSON object") }
        var out = JSONObject()
        for member in input {
            if member.key.caselessEquals("schemas") {
                out["schemas"] = member.value
            } else if let ext = schema.extensions.first(where: { $0.id.caselessEquals(member.key) }) {
                guard case .object(let extMembers) = member.value else { throw .invalidValue("\(ext.id) must be an object") }
                var e = JSONObject()
                for m in extMembers {
                    let def = ext.attribute(m.key)
                    e[def?.name ?? m.key] = try checked(m.value, def, path: "\(ext.id):\(m.key)")
                }
                out[ext.id] = .object(e)
            } else {
                let def = schema.core.attribute(member.key) ?? CommonAttributes.attribute(member.key)
                out[def?.name ?? member.key] = try checked(member.value, def, path: member.key)
            }
        }
        return .object(out)
    }

    /// Required attributes of the core schema and of the extensions present.
    public static func checkRequired(_ resource: JSON, schema: ResourceSchema) throws(SCIMError) {
        for a in schema.core.attributes where a.required && a.mutability != .readOnly {
            if resource[a.name]?.isUnassigned ?? true { throw .invalidValue("\(a.name) is required") }
        }
    }

    static func checked(_ value: JSON, _ def: AttributeDefinition?, path: String) throws(SCIMError) -> JSON {
        let v = coerce(value, def, asElement: false)
        guard let def else { return v }
        func checkScalar(_ x: JSON, _ d: AttributeDefinition) throws(SCIMError) {
            switch (d.type, x) {
            case (_, .null): return
            case (.boolean, .bool), (.decimal, .number), (.complex, .object): return
            case (.integer, .number(let n)) where n.rounded() == n: return
            case (.string, .string), (.reference, .string), (.binary, .string): return
            case (.dateTime, .string(let s)) where DateTime.parse(s) != nil: return
            default: throw .invalidValue("\(path) must be of type \(d.type.rawValue)")
            }
        }
        if def.multiValued {
            guard case .array(let elements) = v else {
                if v.isNull { return v }
                throw .invalidValue("\(path) is multi-valued and must be an array")
            }
            for e in elements { try checkScalar(e, def) }
        } else {
            try checkScalar(v, def)
        }
        return v
    }

    /// Coerces a value towards its definition; `asElement` when it is one value of a multi-valued attribute.
    public static func coerce(_ value: JSON, _ def: AttributeDefinition?, asElement: Bool) -> JSON {
        guard let def else { return value }
        switch value {
        case .string(let s) where def.type == .boolean:
            if s.caselessEquals("true") { return .bool(true) }
            if s.caselessEquals("false") { return .bool(false) }
            return value
        case .array(let elements) where def.multiValued && !asElement:
            return .array(elements.map { coerce($0, def, asElement: true) })
        case .string where def.type == .complex && (!def.multiValued || asElement) && def.subAttribute("value") != nil:
            // A reference sent as its bare value: Microsoft Entra ID patches the enterprise
            // `manager` with "id" for {"value": "id"}.
            return .object(["value": value])
        case .object(let o) where def.type == .complex:
            var out = JSONObject()
            for m in o {
                let sub = def.subAttribute(m.key)
                out[sub?.name ?? m.key] = coerce(m.value, sub, asElement: false)
            }
            return .object(out)
        default:
            return value
        }
    }
}
