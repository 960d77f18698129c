import CConnectorABI
import SCIMKit

/// Which operations a connector's descriptor provides (the function pointers that are not
/// NULL): what capability discovery reads. Read from a loaded library, or sent by the child
/// process that loaded it for an isolated app (`json`).
public struct ConnectorShape: Sendable, Equatable {
    public struct Operations: OptionSet, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let create = Operations(rawValue: 1 << 0)
        public static let createMany = Operations(rawValue: 1 << 1)
        public static let get = Operations(rawValue: 1 << 2)
        public static let replace = Operations(rawValue: 1 << 3)
        public static let replaceIf = Operations(rawValue: 1 << 4)
        public static let patch = Operations(rawValue: 1 << 5)
        public static let remove = Operations(rawValue: 1 << 6)
        public static let search = Operations(rawValue: 1 << 7)
    }

    /// nil: the connector has no table for that resource type.
    public var users: Operations?
    public var groups: Operations?
    public var memberDeltas: Bool

    init(_ library: PluginLibrary) {
        func operations(_ ops: scimc_resource_ops?) -> Operations? {
            guard let ops else { return nil }
            var o: Operations = []
            if ops.create != nil { o.insert(.create) }
            if ops.create_many != nil { o.insert(.createMany) }
            if ops.get != nil { o.insert(.get) }
            if ops.replace != nil { o.insert(.replace) }
            if ops.replace_if != nil { o.insert(.replaceIf) }
            if ops.patch != nil { o.insert(.patch) }
            if ops.remove != nil { o.insert(.remove) }
            if ops.search != nil { o.insert(.search) }
            return o
        }
        users = operations(library.users)
        groups = operations(library.groups)
        let d = library.descriptor.pointee
        memberDeltas = d.add_members != nil && d.remove_members != nil
    }

    public subscript(kind: Capabilities.ResourceKind) -> Operations? { kind == .user ? users : groups }

    var json: JSON {
        var o: JSONObject = ["memberDeltas": .bool(memberDeltas)]
        if let users { o["users"] = .number(Double(users.rawValue)) }
        if let groups { o["groups"] = .number(Double(groups.rawValue)) }
        return .object(o)
    }

    init?(json: JSON) {
        guard case .object = json, let deltas = json["memberDeltas"]?.boolValue else { return nil }
        users = json["users"]?.intValue.map(Operations.init(rawValue:))
        groups = json["groups"]?.intValue.map(Operations.init(rawValue:))
        memberDeltas = deltas
    }
}
