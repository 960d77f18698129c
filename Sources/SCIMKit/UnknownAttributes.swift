/// The attributes of a resource that a target cannot hold: those its schema (what the
/// connector describes, or what a remote server publishes) does not have. Without a word they
/// would be dropped by the target, or refused by a strict remote server.
extension ResourceSchema {
    /// The resource without those attributes, and their paths as a client would write them
    /// (`nickName`, `urn:okta:onprem_app:1.0:user:custom:costCenter`).
    public func withoutUnknownAttributes(_ resource: JSON) -> (resource: JSON, unknown: [String]) {
        guard case .object(let input) = resource else { return (resource, []) }
        var out = JSONObject()
        var unknown: [String] = []
        for member in input {
            let key = member.key
            if let def = core.attribute(key), def.type == .complex, !def.multiValued, !def.subAttributes.isEmpty, case .object(let members) = member.value {
                // A single-valued complex attribute keeps the sub-attributes it has (ldap's
                // name: givenName and familyName, not formatted). The elements of a
                // multi-valued one keep their type and primary whatever the target stores.
                out[key] = Self.kept(members, where: { def.subAttribute($0) != nil }, naming: { key + "." + $0 }, &unknown)
            } else if key.caselessEquals("schemas") || key.caselessEquals("password") || CommonAttributes.attribute(key) != nil || core.attribute(key) != nil {
                out[key] = member.value
            } else if let ext = extensions.first(where: { $0.id.caselessEquals(key) }) {
                guard case .object(let members) = member.value else { out[key] = member.value; continue }
                out[key] = Self.kept(members, where: { ext.attribute($0) != nil }, naming: { ext.id + ":" + $0 }, &unknown)
            } else if key.lowercased().hasPrefix("urn:"), case .object(let members) = member.value {
                unknown += members.map { key + ":" + $0.key }
            } else {
                unknown.append(key)
            }
        }
        guard !unknown.isEmpty else { return (resource, []) }
        // An extension whose object is gone is no longer listed.
        if let schemas = out["schemas"]?.arrayValue {
            out["schemas"] = .array(schemas.filter { s in
                guard let id = s.stringValue, input.contains(where: { $0.key.caselessEquals(id) }) else { return true }
                return out.contains { $0.key.caselessEquals(id) }
            })
        }
        return (.object(out), unknown)
    }

    /// The members `has` says are held (nil when none is); the others' paths go to `unknown`.
    static func kept(_ members: JSONObject, where has: (String) -> Bool, naming path: (String) -> String, _ unknown: inout [String]) -> JSON? {
        var kept = JSONObject()
        for m in members {
            if has(m.key) { kept[m.key] = m.value } else { unknown.append(path(m.key)) }
        }
        return kept.isEmpty ? nil : .object(kept)
    }

    /// Whether a PATCH path names an attribute this schema has.
    public func holds(_ path: PatchPath) -> Bool {
        let a = path.attribute
        // A bare extension URN names the whole extension object.
        if path.filter == nil, extensions.contains(where: { $0.id.caselessEquals(path.text) }) { return true }
        if a.schema == nil, CommonAttributes.attribute(a.name) != nil || a.name.caselessEquals("schemas") { return true }
        return definition(for: a.parent) != nil
    }
}
