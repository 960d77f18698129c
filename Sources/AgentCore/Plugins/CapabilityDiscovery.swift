import SCIMKit

/// Derives an app's capabilities from what its connector really implements: which operation
/// pointers its descriptor sets (`ConnectorShape`), and what its `describe` reply says.
enum CapabilityDiscovery {
    static func capabilities(of shape: ConnectorShape, described: JSON?, auth: AgentConfig.Auth) -> Capabilities {
        func resource(_ ops: ConnectorShape.Operations?, _ kind: Capabilities.ResourceKind) -> Capabilities.Resource? {
            guard let ops else { return nil }
            var operations: Capabilities.Operations = []
            if !ops.isDisjoint(with: [.create, .createMany]) { operations.insert(.create) }
            if ops.contains(.get) { operations.insert(.get) }
            if ops.contains(.replace) { operations.insert(.replace) }
            if ops.isSuperset(of: [.replace, .replaceIf]) { operations.insert(.conditionalReplace) }
            if ops.contains(.patch) { operations.insert(.patch) }
            if ops.contains(.remove) { operations.insert(.delete) }
            if ops.contains(.search) { operations.insert(.search) }
            let facts = described?[kind == .user ? "users" : "groups"]
            // `"operations": [...]`: this instance does only these of what the library can
            // (e.g. the native connector, what its manifest maps).
            if let named = facts?["operations"]?.arrayValue?.compactMap(\.stringValue) {
                var narrowed: Capabilities.Operations = []
                if named.contains("create") { narrowed.insert(.create) }
                if named.contains("get") { narrowed.insert(.get) }
                if named.contains("replace") { narrowed.formUnion([.replace, .conditionalReplace]) }
                if named.contains("patch") { narrowed.insert(.patch) }
                if named.contains("delete") { narrowed.insert(.delete) }
                if named.contains("search") { narrowed.insert(.search) }
                operations.formIntersection(narrowed)
            }
            // `"groups": false`: this instance has none (e.g. its mapping has no group tables).
            guard !operations.isEmpty, facts != .bool(false) else { return nil }
            let writes = operations.contains(.create) || operations.contains(.replace) || operations.contains(.patch)
            var schema = kind.coreSchema
            let names = facts?["attributes"]?.arrayValue?.compactMap(\.stringValue)
            if let names { schema = restrict(schema, to: names) }
            for path in facts?["required"]?.arrayValue?.compactMap(\.stringValue).compactMap({ AttributePath(parsing: $0) }) ?? [] {
                schema = markRequired(schema, path)
            }
            for ext in facts?["schemaExtensions"]?.arrayValue ?? [] {
                if let s = try? Schema(json: ext), schema.schema(withID: s.id) == nil { schema.extensions.append(s) }
            }
            return Capabilities.Resource(
                operations: operations, schema: schema, sort: facts?["sort"]?.boolValue ?? false,
                passwordWritable: kind == .user && (facts?["passwordWritable"]?.boolValue ?? writes),
                activeWritable: kind == .user && (facts?["activeWritable"]?.boolValue ?? writes),
                // The agent evaluates whatever part of a filter a connector leaves, so an
                // incremental import works wherever search does and resources carry meta.
                lastModifiedFilter: operations.contains(.search),
                // With no attribute list, the connector stores whatever it is given.
                holdsAnyAttribute: names == nil)
        }
        return Capabilities(
            users: resource(shape.users, .user), groups: resource(shape.groups, .group),
            groupMemberDeltas: shape.memberDeltas,
            authenticationSchemes: authenticationSchemes(auth))
    }

    /// The schema cut down to the attributes a connector stores ("name.givenName" keeps `name`
    /// with only that sub-attribute). Common attributes (id, externalId, meta) always stay.
    static func restrict(_ schema: ResourceSchema, to names: [String]) -> ResourceSchema {
        let paths = names.compactMap { AttributePath(parsing: $0) }
        func keep(_ s: Schema, isCore: Bool) -> Schema {
            var out = s
            out.attributes = s.attributes.compactMap { a in
                let wanted = paths.filter { p in
                    p.name.caselessEquals(a.name) && (p.schema.map { $0.caselessEquals(s.id) } ?? isCore)
                }
                if wanted.isEmpty { return nil }
                if wanted.contains(where: { $0.subAttribute == nil }) { return a }
                var cut = a
                cut.subAttributes = a.subAttributes.filter { sub in wanted.contains { $0.subAttribute?.caselessEquals(sub.name) == true } }
                return cut
            }
            return out
        }
        var out = schema
        out.core = keep(schema.core, isCore: true)
        out.extensions = schema.extensions.map { keep($0, isCore: false) }.filter { !$0.attributes.isEmpty }
        // Paths of an extension the agent has no schema for (Okta's
        // urn:okta:onprem_app:1.0:user:custom:costCenter, mapped by an admin): string attributes
        // of an extension named by its URN, so that they are advertised and reach the connector.
        for path in paths {
            guard let urn = path.schema, !urn.caselessEquals(schema.core.id), schema.schema(withID: urn) == nil else { continue }
            let attribute = AttributeDefinition(path.name)
            if let i = out.extensions.firstIndex(where: { $0.id.caselessEquals(urn) }) {
                if out.extensions[i].attribute(path.name) == nil { out.extensions[i].attributes.append(attribute) }
            } else {
                out.extensions.append(Schema(id: urn, name: urn, description: "attributes the connector maps", attributes: [attribute]))
            }
        }
        return out
    }

    /// An attribute the target always holds a value for (e.g. a directory's `active`).
    static func markRequired(_ schema: ResourceSchema, _ path: AttributePath) -> ResourceSchema {
        var out = schema
        if let i = out.core.attributes.firstIndex(where: { $0.name.caselessEquals(path.name) }) { out.core.attributes[i].required = true }
        return out
    }

    static func authenticationSchemes(_ auth: AgentConfig.Auth) -> [JSON] {
        switch auth {
        case .none: return []
        case .basic:
            return [[
                "type": "httpbasic", "name": "HTTP Basic", "description": "Authentication with a user name and password (RFC 7617)",
                "specUri": "https://www.rfc-editor.org/info/rfc7617", "primary": true,
            ]]
        case .header(let name, _):
            return [[
                "type": name.caselessEquals("Authorization") ? "oauthbearertoken" : "httpheader",
                "name": "HTTP header \(name)", "description": "A shared secret in the \(name) header",
                "specUri": "https://www.rfc-editor.org/info/rfc6750", "primary": true,
            ]]
        }
    }
}
