/// Applies PATCH operations to a resource (RFC 7644 §3.5.2.1–3).
public struct PatchApplier: Sendable {
    public let schema: ResourceSchema

    public init(schema: ResourceSchema) { self.schema = schema }

    public func apply(_ request: PatchRequest, to resource: JSON) throws(SCIMError) -> JSON {
        guard case .object(var root) = resource else { throw .invalidValue("the resource is not a JSON object") }
        var primaryTouched: Set<String> = []
        for operation in request.operations {
            try apply(operation, to: &root, primaryTouched: &primaryTouched)
        }
        for name in primaryTouched { try checkSinglePrimary(name, in: root) }
        return .object(root)
    }

    // MARK: - One operation

    private func apply(_ operation: PatchOperation, to root: inout JSONObject, primaryTouched: inout Set<String>) throws(SCIMError) {
        guard let path = operation.path else {
            guard case .object(let members)? = operation.value else {
                throw .invalidValue("\(operation.op.rawValue) without a path needs an object value")
            }
            for member in members {
                if member.key.caselessEquals("schemas") { continue }
                if let path = pathAsKey(member.key) {
                    // Microsoft Entra ID puts paths where RFC 7644 puts names:
                    // {"name.givenName": "x", "urn:…:enterprise:2.0:User:department": "y"}.
                    try set(operation.op, path, member.value, in: &root, primaryTouched: &primaryTouched)
                } else if let ext = schema.extensions.first(where: { $0.id.caselessEquals(member.key) }) ?? unknownExtension(member) {
                    guard case .object(let extMembers) = member.value else {
                        throw .invalidValue("the value of \(member.key) must be an object")
                    }
                    for m in extMembers {
                        try set(operation.op, AttributePath(schema: ext.id, name: m.key), m.value, in: &root, primaryTouched: &primaryTouched)
                    }
                } else {
                    try set(operation.op, AttributePath(name: member.key), member.value, in: &root, primaryTouched: &primaryTouched)
                }
            }
            return
        }
        // A bare extension URN names the whole extension object.
        if path.filter == nil, let ext = schema.extensions.first(where: { $0.id.caselessEquals(path.text) }) {
            if operation.op == .remove {
                root[ext.id] = nil
                removeSchema(ext.id, from: &root)
                return
            }
            guard case .object(let extMembers)? = operation.value else { throw .invalidValue("the value of \(ext.id) must be an object") }
            for m in extMembers {
                try set(operation.op, AttributePath(schema: ext.id, name: m.key), m.value, in: &root, primaryTouched: &primaryTouched)
            }
            return
        }
        if let filter = path.filter {
            try applyFiltered(operation, path: path, filter: filter, to: &root, primaryTouched: &primaryTouched)
        } else if operation.op == .remove {
            try remove(path.attribute, from: &root)
        } else {
            try set(operation.op, path.attribute, operation.value ?? .null, in: &root, primaryTouched: &primaryTouched)
        }
    }

    /// A member name of a path-less value that is a path: `attr.sub`, or an attribute of a
    /// schema this resource type has (`urn:…:User:department`). Not an extension's own URN.
    private func pathAsKey(_ key: String) -> AttributePath? { Self.pathAsKey(key, in: schema) }

    static func pathAsKey(_ key: String, in schema: ResourceSchema) -> AttributePath? {
        guard let path = AttributePath(parsing: key) else { return nil }
        if let urn = path.schema {
            guard schema.schema(withID: urn) != nil, !schema.extensions.contains(where: { $0.id.caselessEquals(key) }) else { return nil }
            return path
        }
        return path.subAttribute == nil ? nil : path
    }

    private func unknownExtension(_ member: JSONObject.Member) -> Schema? {
        guard member.key.lowercased().hasPrefix("urn:"), case .object = member.value else { return nil }
        if schema.core.id.caselessEquals(member.key) { return nil }
        return Schema(id: member.key, name: member.key, description: "", attributes: [])
    }

    private func definition(_ path: AttributePath) throws(SCIMError) -> AttributeDefinition? {
        if let urn = path.schema, schema.schema(withID: urn) == nil, !urn.lowercased().hasPrefix("urn:") {
            throw .invalidPath("unknown schema \(urn)")
        }
        return schema.definition(for: path.parent)
    }

    /// add / replace of `attr` or `attr.sub`.
    private func set(_ op: PatchOperation.Op, _ path: AttributePath, _ rawValue: JSON, in root: inout JSONObject, primaryTouched: inout Set<String>) throws(SCIMError) {
        let top = try definition(path)
        let target = path.subAttribute.flatMap { top?.subAttribute($0) } ?? (path.subAttribute == nil ? top : nil)
        let value = ResourceNormalizer.coerce(rawValue, target, asElement: path.subAttribute != nil && top?.multiValued == true)
        if value.isNull || (value.arrayValue?.isEmpty == true && path.subAttribute == nil) {
            if op == .replace || value.isNull { try remove(path, from: &root) }
            return
        }
        let current = Self.read(path.parent, in: root, schema: schema)
        try checkMutability(top, path: path, current: current, new: value, subAttribute: path.subAttribute)
        if path.name.caselessEquals("id") || path.name.caselessEquals("meta") { return }  // equal readOnly values are tolerated
        let key = top?.name ?? path.name
        try modify(path, in: &root) { (container: inout JSONObject) throws(SCIMError) in
            if let sub = path.subAttribute {
                let subKey = target?.name ?? sub
                switch container[key] {
                case .array(var elements)?:
                    for i in elements.indices { elements[i][subKey] = value }
                    container[key] = .array(elements)
                case .object(var o)?:
                    o[subKey] = value
                    container[key] = .object(o)
                default:
                    if top?.multiValued == true { throw .noTarget("\(path) has no values to set \(sub) on") }
                    container[key] = .object([subKey: value])
                }
                return
            }
            if top?.multiValued == true || (top == nil && value.arrayValue != nil) {
                let incoming = value.arrayValue ?? [value]
                if incoming.contains(where: { $0["primary"]?.boolValue == true }) { primaryTouched.insert(path.description) }
                if op == .replace {
                    container[key] = .array(incoming)
                } else {
                    var elements = container[key]?.arrayValue ?? []
                    if incoming.contains(where: { $0["primary"]?.boolValue == true }) {
                        for i in elements.indices where elements[i]["primary"] != nil { elements[i]["primary"] = .bool(false) }
                    }
                    for e in incoming where !elements.contains(e) { elements.append(e) }
                    container[key] = .array(elements)
                }
            } else if case .object(let incoming) = value, case .object(var existing)? = container[key] {
                for m in incoming { existing[m.key] = m.value.isNull ? nil : m.value }
                container[key] = .object(existing)
            } else {
                container[key] = value
            }
        }
    }

    private func remove(_ path: AttributePath, from root: inout JSONObject) throws(SCIMError) {
        let top = try definition(path)
        if let top, top.mutability == .readOnly || top.required || (top.mutability == .immutable && path.subAttribute == nil) {
            if !(top.mutability == .readOnly && Self.read(path.parent, in: root, schema: schema) == nil) {
                throw .mutability("\(path) cannot be removed (\(top.required ? "required" : top.mutability.rawValue))")
            }
        }
        let key = top?.name ?? path.name
        try modify(path, in: &root) { (container: inout JSONObject) throws(SCIMError) in
            guard let sub = path.subAttribute else { container[key] = nil; return }
            switch container[key] {
            case .array(var elements)?:
                for i in elements.indices { elements[i][sub] = nil }
                container[key] = .array(elements)
            case .object(var o)?:
                o[sub] = nil
                container[key] = o.isEmpty ? nil : .object(o)
            default: break
            }
        }
    }

    /// Operations on `attr[filter]` and `attr[filter].sub`.
    private func applyFiltered(_ operation: PatchOperation, path: PatchPath, filter: Filter, to root: inout JSONObject, primaryTouched: inout Set<String>) throws(SCIMError) {
        let attr = path.attribute
        let top = try definition(attr)
        if let top, !top.multiValued { throw .invalidPath("\(attr) is not multi-valued; a value filter cannot select from it") }
        if let top, top.mutability == .readOnly { throw .mutability("\(attr) is readOnly") }
        let sub = path.subAttribute.map { s in top?.subAttribute(s)?.name ?? s }
        let subDefinition = path.subAttribute.flatMap { top?.subAttribute($0) }
        let key = top?.name ?? attr.name
        let evaluator = FilterEvaluator(schema: ResourceSchema(core: Schema(id: "", name: key, description: "", attributes: top?.subAttributes ?? [])))
        let value = operation.value.map { ResourceNormalizer.coerce($0, subDefinition ?? top, asElement: true) }
        try modify(attr, in: &root) { (container: inout JSONObject) throws(SCIMError) in
            var elements = container[key]?.arrayValue ?? []
            var matched = elements.indices.filter { evaluator.matches(filter, elements[$0]) }
            // A filter only on sub-attributes the target does not keep (a directory keeps email
            // values, not their types) cannot tell its values apart: it selects the one the
            // target keeps first, its primary. So Entra's `emails[type eq "work"].value` replace
            // replaces the address rather than adding a second one.
            if matched.isEmpty, let top, !elements.isEmpty, !top.subAttributes.isEmpty,
                filter.paths.allSatisfy({ top.subAttribute($0.name) == nil })
            {
                matched = [elements.firstIndex { $0["primary"]?.boolValue == true } ?? elements.startIndex]
            }
            switch operation.op {
            case .remove:
                if let sub {
                    for i in matched { elements[i][sub] = nil }
                } else {
                    for i in matched.reversed() { elements.remove(at: i) }
                }
            case .add, .replace:
                guard let value else { return }
                if matched.isEmpty {
                    // What Entra ID and Okta expect: `emails[type eq "work"].value` creates the
                    // work email when there is none. Only an `eq` filter says what to create.
                    guard var element = Self.template(from: filter) else {
                        throw .noTarget("no value of \(key) matches [\(filter)]")
                    }
                    if let sub { element[sub] = value } else if case .object(let o) = value { for m in o { element[m.key] = m.value } }
                    elements.append(.object(element))
                } else {
                    for i in matched {
                        if let sub {
                            elements[i][sub] = value.isNull ? nil : value
                        } else if operation.op == .replace {
                            elements[i] = value
                        } else if case .object(let o) = value {
                            for m in o { elements[i][m.key] = m.value }
                        }
                    }
                }
                if sub?.caselessEquals("primary") == true || value["primary"]?.boolValue == true { primaryTouched.insert(key) }
            }
            container[key] = elements.isEmpty ? nil : .array(elements)
        }
    }

    /// The element an `eq`-only filter describes, or nil when it describes no single element.
    static func template(from filter: Filter) -> JSONObject? {
        switch filter {
        case .compare(let p, .eq, let v) where p.subAttribute == nil && p.schema == nil: return [p.name: v]
        case .and(let l, let r):
            guard var a = template(from: l), let b = template(from: r) else { return nil }
            for m in b { a[m.key] = m.value }
            return a
        default: return nil
        }
    }

    // MARK: - Helpers

    private func checkMutability(_ definition: AttributeDefinition?, path: AttributePath, current: JSON?, new: JSON, subAttribute: String?) throws(SCIMError) {
        guard let definition else { return }
        switch definition.mutability {
        case .readOnly:
            if subAttribute == nil, let current, current == new { return }
            if path.name.caselessEquals("id") || path.name.caselessEquals("meta") {
                if path.name.caselessEquals("meta") { return }
                throw .mutability("id is readOnly and cannot be changed")
            }
            throw .mutability("\(path) is readOnly")
        case .immutable:
            if let current, !current.isUnassigned, current != new { throw .mutability("\(path) is immutable and already has a value") }
        default: return
        }
    }

    private func checkSinglePrimary(_ name: String, in root: JSONObject) throws(SCIMError) {
        guard let path = AttributePath(parsing: name),
            let elements = Self.read(path.parent, in: root, schema: schema)?.arrayValue
        else { return }
        if elements.count(where: { $0["primary"]?.boolValue == true }) > 1 {
            throw .invalidValue("more than one value of \(path.name) has primary set to true")
        }
    }

    static func read(_ path: AttributePath, in root: JSONObject, schema: ResourceSchema) -> JSON? {
        if let urn = path.schema, !schema.core.id.caselessEquals(urn) { return root[urn]?[path.name] }
        return root[path.name]
    }

    /// Runs `body` on the object that holds `path`: the resource, or its extension object
    /// (created on demand, and listed in `schemas`).
    private func modify(_ path: AttributePath, in root: inout JSONObject, _ body: (inout JSONObject) throws(SCIMError) -> Void) throws(SCIMError) {
        guard let urn = path.schema, !schema.core.id.caselessEquals(urn) else {
            try body(&root)
            return
        }
        let id = schema.schema(withID: urn)?.id ?? urn
        var ext = root[id]?.objectValue ?? JSONObject()
        try body(&ext)
        if ext.isEmpty {
            root[id] = nil
            removeSchema(id, from: &root)
        } else {
            root[id] = .object(ext)
            var schemas = root["schemas"]?.arrayValue ?? []
            if !schemas.contains(where: { $0.stringValue?.caselessEquals(id) == true }) {
                schemas.append(.string(id))
                root["schemas"] = .array(schemas)
            }
        }
    }

    private func removeSchema(_ id: String, from root: inout JSONObject) {
        guard var schemas = root["schemas"]?.arrayValue else { return }
        schemas.removeAll { $0.stringValue?.caselessEquals(id) == true }
        root["schemas"] = .array(schemas)
    }
}
