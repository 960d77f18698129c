/// Attribute characteristics of RFC 7643 §2.2 / §7.
public struct AttributeDefinition: Sendable, Equatable {
    public enum DataType: String, Sendable { case string, boolean, decimal, integer, dateTime, reference, binary, complex }
    public enum Mutability: String, Sendable { case readOnly, readWrite, immutable, writeOnly }
    public enum Returned: String, Sendable { case always, never, `default`, request }
    public enum Uniqueness: String, Sendable { case none, server, global }

    public var name: String
    public var type: DataType
    public var multiValued: Bool
    public var description: String
    public var required: Bool
    public var caseExact: Bool
    public var mutability: Mutability
    public var returned: Returned
    public var uniqueness: Uniqueness
    public var canonicalValues: [String]
    public var referenceTypes: [String]
    public var subAttributes: [AttributeDefinition]

    public init(
        _ name: String, _ type: DataType = .string, multiValued: Bool = false, description: String? = nil,
        required: Bool = false, caseExact: Bool = false, mutability: Mutability = .readWrite,
        returned: Returned = .default, uniqueness: Uniqueness = .none, canonicalValues: [String] = [],
        referenceTypes: [String] = [], subAttributes: [AttributeDefinition] = []
    ) {
        self.name = name
        self.type = type
        self.multiValued = multiValued
        self.description = description ?? name
        self.required = required
        self.caseExact = caseExact
        self.mutability = mutability
        self.returned = returned
        self.uniqueness = uniqueness
        self.canonicalValues = canonicalValues
        self.referenceTypes = referenceTypes
        self.subAttributes = subAttributes
    }

    public func subAttribute(_ name: String) -> AttributeDefinition? {
        subAttributes.first { $0.name.caselessEquals(name) }
    }

    public var json: JSON {
        var o = JSONObject()
        o["name"] = .string(name)
        o["type"] = .string(type.rawValue)
        if type == .complex { o["subAttributes"] = .array(subAttributes.map(\.json)) }
        o["multiValued"] = .bool(multiValued)
        o["description"] = .string(description)
        o["required"] = .bool(required)
        if !canonicalValues.isEmpty { o["canonicalValues"] = .array(canonicalValues.map(JSON.string)) }
        if type == .string || type == .reference || type == .binary { o["caseExact"] = .bool(caseExact) }
        o["mutability"] = .string(mutability.rawValue)
        o["returned"] = .string(returned.rawValue)
        if type != .complex && type != .boolean { o["uniqueness"] = .string(uniqueness.rawValue) }
        if type == .reference { o["referenceTypes"] = .array(referenceTypes.map(JSON.string)) }
        return .object(o)
    }

    /// Reads a definition as `/Schemas` publishes it (a remote server's or a connector's).
    public init(json: JSON) throws(SCIMError) {
        guard let name = json["name"]?.stringValue, !name.isEmpty else { throw .invalidValue("schema attribute without a name") }
        let type = json["type"]?.stringValue.flatMap { t in DataType.allCases.first { $0.rawValue.caselessEquals(t) } } ?? .string
        var subs: [AttributeDefinition] = []
        for s in json["subAttributes"]?.arrayValue ?? [] { subs.append(try AttributeDefinition(json: s)) }
        self.init(
            name, type, multiValued: json["multiValued"]?.boolValue ?? false,
            description: json["description"]?.stringValue, required: json["required"]?.boolValue ?? false,
            caseExact: json["caseExact"]?.boolValue ?? false,
            mutability: json["mutability"]?.stringValue.flatMap(Mutability.init(rawValue:)) ?? .readWrite,
            returned: json["returned"]?.stringValue.flatMap(Returned.init(rawValue:)) ?? .default,
            uniqueness: json["uniqueness"]?.stringValue.flatMap(Uniqueness.init(rawValue:)) ?? .none,
            canonicalValues: json["canonicalValues"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            referenceTypes: json["referenceTypes"]?.arrayValue?.compactMap(\.stringValue) ?? [], subAttributes: subs)
    }
}

extension AttributeDefinition.DataType: CaseIterable {}

/// A schema (RFC 7643 §7): an id (URN) and its attributes.
public struct Schema: Sendable, Equatable {
    public var id: String
    public var name: String
    public var description: String
    public var attributes: [AttributeDefinition]

    public init(id: String, name: String, description: String, attributes: [AttributeDefinition]) {
        self.id = id
        self.name = name
        self.description = description
        self.attributes = attributes
    }

    public func attribute(_ name: String) -> AttributeDefinition? { attributes.first { $0.name.caselessEquals(name) } }

    public func json(location: String? = nil) -> JSON {
        var meta: JSONObject = ["resourceType": "Schema"]
        if let location { meta["location"] = .string(location) }
        return [
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": .string(id), "name": .string(name),
            "description": .string(description), "attributes": .array(attributes.map(\.json)), "meta": .object(meta),
        ]
    }

    public init(json: JSON) throws(SCIMError) {
        guard let id = json["id"]?.stringValue else { throw .invalidValue("schema without an id") }
        var attributes: [AttributeDefinition] = []
        for a in json["attributes"]?.arrayValue ?? [] { attributes.append(try AttributeDefinition(json: a)) }
        self.init(id: id, name: json["name"]?.stringValue ?? id, description: json["description"]?.stringValue ?? "", attributes: attributes)
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self.init(elements.map { Member(key: $0.0, value: $0.1) })
    }
}

/// A resource type's schemas taken together: the core schema, its extensions and the common
/// attributes (`id`, `externalId`, `meta`). Paths resolve against it.
public struct ResourceSchema: Sendable, Equatable {
    public var core: Schema { didSet { hidden = Hidden(core, extensions) } }
    public var extensions: [Schema] { didSet { hidden = Hidden(core, extensions) } }
    /// What a default projection leaves out, worked out once rather than per resource shown.
    public private(set) var hidden: Hidden

    /// The top-level attributes returned `never` or only on `request`: the core's, and each
    /// extension's by its schema id.
    public struct Hidden: Sendable, Equatable {
        public var core: [String]
        public var extensions: [(id: String, names: [String])]

        init(_ core: Schema, _ extensions: [Schema]) {
            func names(_ s: Schema) -> [String] { s.attributes.filter { $0.returned == .never || $0.returned == .request }.map(\.name) }
            self.core = names(core)
            self.extensions = extensions.map { ($0.id, names($0)) }.filter { !$0.names.isEmpty }
        }

        public static func == (a: Hidden, b: Hidden) -> Bool {
            a.core == b.core && a.extensions.map(\.id) == b.extensions.map(\.id) && a.extensions.map(\.names) == b.extensions.map(\.names)
        }
    }

    public init(core: Schema, extensions: [Schema] = []) {
        self.core = core
        self.extensions = extensions
        self.hidden = Hidden(core, extensions)
    }

    public var allSchemaIDs: [String] { [core.id] + extensions.map(\.id) }

    public func schema(withID id: String) -> Schema? {
        if core.id.caselessEquals(id) { return core }
        return extensions.first { $0.id.caselessEquals(id) }
    }

    /// The definition a path names, or nil when no schema knows it.
    public func definition(for path: AttributePath) -> AttributeDefinition? {
        let top: AttributeDefinition?
        if let urn = path.schema {
            if core.id.caselessEquals(urn) {
                top = core.attribute(path.name) ?? CommonAttributes.attribute(path.name)
            } else {
                top = schema(withID: urn)?.attribute(path.name)
            }
        } else {
            top = core.attribute(path.name) ?? CommonAttributes.attribute(path.name)
        }
        guard let top else { return nil }
        guard let sub = path.subAttribute else { return top }
        return top.subAttribute(sub)
    }

    /// The same path with names spelled as the schema spells them and core URNs dropped, so
    /// connectors can compare names exactly.
    public func canonical(_ path: AttributePath) -> AttributePath {
        var p = path
        if let urn = p.schema {
            if core.id.caselessEquals(urn) {
                p.schema = nil
            } else if let ext = schema(withID: urn) {
                p.schema = ext.id
                if let a = ext.attribute(p.name) {
                    p.name = a.name
                    if let s = p.subAttribute, let sa = a.subAttribute(s) { p.subAttribute = sa.name }
                }
                return p
            }
        }
        if p.schema == nil, let a = core.attribute(p.name) ?? CommonAttributes.attribute(p.name) {
            p.name = a.name
            if let s = p.subAttribute, let sa = a.subAttribute(s) { p.subAttribute = sa.name }
        }
        return p
    }
}

public enum CommonAttributes {
    public static let id = AttributeDefinition(
        "id", caseExact: true, mutability: .readOnly, returned: .always, uniqueness: .server)
    public static let externalId = AttributeDefinition("externalId", caseExact: true)
    public static let meta = AttributeDefinition(
        "meta", .complex, mutability: .readOnly,
        subAttributes: [
            AttributeDefinition("resourceType", caseExact: true, mutability: .readOnly),
            AttributeDefinition("created", .dateTime, mutability: .readOnly),
            AttributeDefinition("lastModified", .dateTime, mutability: .readOnly),
            AttributeDefinition("location", .reference, caseExact: true, mutability: .readOnly, referenceTypes: ["uri"]),
            AttributeDefinition("version", caseExact: true, mutability: .readOnly),
        ])
    public static let all = [id, externalId, meta]

    public static func attribute(_ name: String) -> AttributeDefinition? { all.first { $0.name.caselessEquals(name) } }
}
