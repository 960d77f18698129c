/// The SCIM 1.1 dialect (Okta's on-premises agent default) translated to and from SCIM 2.0,
/// so that one service answers both: resources differ only in their schema URNs, list
/// responses in their schema, errors in their shape, and PATCH in its form (1.1 sends a
/// partial resource; values marked `"operation": "delete"` and the names in `meta.attributes`
/// are removed).
public enum SCIM11 {
    public static let coreSchema = "urn:scim:schemas:core:1.0"
    public static let enterpriseSchema = "urn:scim:schemas:extension:enterprise:1.0"

    /// 1.1 URN → 2.0 URN for a resource of `kind`; other URNs (custom extensions) pass through.
    static func v2URN(_ urn: String, _ kind: Capabilities.ResourceKind) -> String {
        if urn.caselessEquals(coreSchema) { return kind.schemaID }
        if urn.caselessEquals(enterpriseSchema) { return CoreSchemas.enterpriseUserID }
        return urn
    }

    static func v11URN(_ urn: String) -> String {
        if urn.caselessEquals(CoreSchemas.userID) || urn.caselessEquals(CoreSchemas.groupID) { return coreSchema }
        if urn.caselessEquals(CoreSchemas.enterpriseUserID) { return enterpriseSchema }
        return urn
    }

    /// A 1.1 resource from a client as the 2.0 resource the service takes.
    public static func toV2(_ resource: JSON, _ kind: Capabilities.ResourceKind) -> JSON {
        rename(resource) { v2URN($0, kind) }
    }

    /// A 2.0 resource from the service as the 1.1 resource a client reads.
    public static func fromV2(_ resource: JSON) -> JSON {
        rename(resource, v11URN)
    }

    /// Maps the URNs in `schemas` and the keys of extension objects.
    private static func rename(_ resource: JSON, _ map: (String) -> String) -> JSON {
        guard case .object(let o) = resource else { return resource }
        var out = JSONObject()
        for m in o {
            if m.key.caselessEquals("schemas"), case .array(let urns) = m.value {
                var mapped: [JSON] = []
                for urn in urns {
                    let u = urn.stringValue.map { JSON.string(map($0)) } ?? urn
                    if !mapped.contains(u) { mapped.append(u) }
                }
                out[m.key] = .array(mapped)
            } else if m.key.hasPrefix("urn:") {
                out[map(m.key)] = m.value
            } else {
                out[m.key] = m.value
            }
        }
        return .object(out)
    }

    /// A 2.0 ListResponse as a 1.1 one.
    public static func listFromV2(_ list: JSON) -> JSON {
        guard case .object(var o) = list else { return list }
        o["schemas"] = [.string(coreSchema)]
        if let resources = o["Resources"]?.arrayValue { o["Resources"] = .array(resources.map(fromV2)) }
        return .object(o)
    }

    /// The 1.1 error body: `{"Errors": [{"description": …, "code": "404"}]}`.
    public static func error(_ e: SCIMError) -> JSON {
        ["Errors": [["description": .string(e.detail), "code": .string(String(e.status))]]]
    }

    /// A 1.1 PATCH body (a partial resource) as a 2.0 PatchOp request. `schema` tells which
    /// attributes are multi-valued: their values are added, or removed when marked
    /// `"operation": "delete"`; other attributes are replaced (complex ones sub-attribute by
    /// sub-attribute). The attributes `meta.attributes` names are removed first.
    public static func patchToV2(_ body: JSON, _ kind: Capabilities.ResourceKind, schema: ResourceSchema) throws(SCIMError) -> JSON {
        guard case .object(let o) = toV2(body, kind) else { throw .invalidValue("a SCIM 1.1 PATCH body must be a JSON object") }
        var operations: [JSON] = []
        if let meta = o["meta"] {
            for name in meta["attributes"]?.arrayValue ?? [] {
                guard let path = name.stringValue else { throw .invalidValue("meta.attributes must list attribute names") }
                operations.append(["op": "remove", "path": .string(path)])
            }
        }
        for m in o {
            if ["schemas", "id", "meta"].contains(where: { m.key.caselessEquals($0) }) { continue }
            if m.key.hasPrefix("urn:") {
                // An extension's attributes: replaced (merged) as a whole object.
                var value = JSONObject()
                value[m.key] = m.value
                operations.append(["op": "replace", "value": .object(value)])
                continue
            }
            let def = schema.core.attribute(m.key)
            guard def?.multiValued == true, case .array(let values) = m.value else {
                operations.append(m.value == .null
                    ? ["op": "remove", "path": .string(m.key)]
                    : ["op": "replace", "path": .string(m.key), "value": m.value])
                continue
            }
            var added: [JSON] = []
            for v in values {
                guard case .object(var item) = v else { added.append(v); continue }
                let operation = item["operation"]?.stringValue
                item["operation"] = nil
                if operation?.caselessEquals("delete") == true {
                    guard let value = item["value"]?.stringValue else {
                        throw .invalidValue("a value of \(m.key) marked for deletion needs its \"value\"")
                    }
                    operations.append(["op": "remove", "path": .string("\(m.key)[value eq \(quoted(value))]")])
                } else {
                    added.append(.object(item))
                }
            }
            if !added.isEmpty { operations.append(["op": "add", "path": .string(m.key), "value": .array(added)]) }
        }
        return ["schemas": [.string(PatchRequest.schema)], "Operations": .array(operations)]
    }

    /// A filter string literal.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }
}
