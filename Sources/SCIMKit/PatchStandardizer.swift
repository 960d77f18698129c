/// What Okta and Microsoft Entra ID send, rewritten into RFC 7644's own PATCH forms, so that a
/// strict remote SCIM server accepts it and every target sees one form. `PatchApplier` takes
/// both; a remote server may take only the standard one.
extension PatchRequest {
    public func standardized(for schema: ResourceSchema) -> PatchRequest {
        PatchRequest(operations: operations.flatMap { Self.standardized($0, schema) })
    }

    static func standardized(_ operation: PatchOperation, _ schema: ResourceSchema) -> [PatchOperation] {
        guard let path = operation.path else {
            // Entra: a path-less value whose member names are paths ({"name.givenName": "x"}):
            // one operation per path, the rest kept as the value object.
            guard case .object(let members)? = operation.value else { return [operation] }
            var rest = JSONObject()
            var split: [PatchOperation] = []
            for m in members {
                if let p = PatchApplier.pathAsKey(m.key, in: schema), let parsed = try? PatchPath(parsing: m.key) {
                    split.append(PatchOperation(op: operation.op, path: parsed, value: coerced(m.value, p, schema)))
                } else {
                    rest[m.key] = m.key.lowercased().hasPrefix("urn:") ? m.value : coerced(m.value, AttributePath(name: m.key), schema)
                }
            }
            if split.isEmpty { return [PatchOperation(op: operation.op, value: .object(rest))] }  // {} stays an operation
            return (rest.isEmpty ? [] : [PatchOperation(op: operation.op, value: .object(rest))]) + split
        }
        // Entra: the members to remove sent as the value of a remove of "members".
        if operation.op == .remove, path.filter == nil, path.subAttribute == nil, path.attribute.subAttribute == nil,
            path.attribute.name.caselessEquals("members"), let ids = everyMemberID(operation.value)
        {
            let filter = ids.dropFirst().reduce(Filter.compare(AttributePath(name: "value"), .eq, .string(ids[0]))) { f, id in
                .or(f, .compare(AttributePath(name: "value"), .eq, .string(id)))
            }
            let text = "members[" + filter.description + "]"
            guard let parsed = try? PatchPath(parsing: text) else { return [operation] }
            return [PatchOperation(op: .remove, path: parsed)]
        }
        guard path.filter == nil, let value = operation.value else { return [operation] }
        return [PatchOperation(op: operation.op, path: path, value: coerced(value, path.attribute, schema))]
    }

    /// "False" for false and the like, by the attribute's definition.
    static func coerced(_ value: JSON, _ path: AttributePath, _ schema: ResourceSchema) -> JSON {
        let top = schema.definition(for: path.parent)
        let target = path.subAttribute.flatMap { top?.subAttribute($0) } ?? (path.subAttribute == nil ? top : nil)
        return ResourceNormalizer.coerce(value, target, asElement: path.subAttribute != nil && top?.multiValued == true)
    }

    /// The `value` of each member given, or nil when one has none.
    static func everyMemberID(_ value: JSON?) -> [String]? {
        guard let list = value.map({ $0.arrayValue ?? [$0] }), !list.isEmpty else { return nil }
        let ids = list.compactMap { $0["value"]?.stringValue }
        return ids.count == list.count ? ids : nil
    }
}
