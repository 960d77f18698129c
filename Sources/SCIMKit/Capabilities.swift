/// What an app's target can really do — derived from a connector's descriptor and `describe`
/// reply, or from a remote server's discovery documents. Every discovery document and every
/// "can the target do this?" decision is made from this one description.
public struct Capabilities: Sendable, Equatable {
    public struct Operations: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let create = Operations(rawValue: 1 << 0)
        public static let get = Operations(rawValue: 1 << 1)
        public static let replace = Operations(rawValue: 1 << 2)
        public static let patch = Operations(rawValue: 1 << 3)
        public static let delete = Operations(rawValue: 1 << 4)
        public static let search = Operations(rawValue: 1 << 5)
        /// A replace that writes only if the resource is still the version read (ABI 1.2's
        /// replace_if, a remote's If-Match): what makes get → apply → replace safe.
        public static let conditionalReplace = Operations(rawValue: 1 << 6)
        public static let all: Operations = [.create, .get, .replace, .patch, .delete, .search]
    }

    public struct Resource: Sendable, Equatable {
        /// Operations the target implements itself (PATCH may still be served as get + replace).
        public var operations: Operations
        public var schema: ResourceSchema
        public var sort: Bool
        public var passwordWritable: Bool
        public var activeWritable: Bool
        /// Filters on `meta.lastModified gt` are answered (Okta's incremental import).
        public var lastModifiedFilter: Bool
        /// The target keeps attributes its schema does not name (a JSON store, a database
        /// row's attributes column); false when `schema` lists all it can hold.
        public var holdsAnyAttribute: Bool

        public init(operations: Operations, schema: ResourceSchema, sort: Bool = false, passwordWritable: Bool = false,
                    activeWritable: Bool = false, lastModifiedFilter: Bool = false, holdsAnyAttribute: Bool = true) {
            self.operations = operations
            self.schema = schema
            self.sort = sort
            self.passwordWritable = passwordWritable
            self.activeWritable = activeWritable
            self.lastModifiedFilter = lastModifiedFilter
            self.holdsAnyAttribute = holdsAnyAttribute
        }

        /// PATCH is served natively or as get → apply → replace.
        public var canPatch: Bool { operations.contains(.patch) || operations.isSuperset(of: [.get, .replace]) }
        public var canUpdate: Bool { operations.contains(.replace) || canPatch }
    }

    public var users: Resource?
    public var groups: Resource?
    /// Membership changes go to the target as add/remove deltas.
    public var groupMemberDeltas: Bool
    public var bulkMaxOperations: Int
    public var bulkMaxPayloadSize: Int
    public var filterMaxResults: Int
    /// RFC 7643 §5 authenticationSchemes entries, from the app's auth configuration.
    public var authenticationSchemes: [JSON]

    public init(users: Resource?, groups: Resource?, groupMemberDeltas: Bool = false, bulkMaxOperations: Int = 1000,
                bulkMaxPayloadSize: Int = 1 << 20, filterMaxResults: Int = 1000, authenticationSchemes: [JSON] = []) {
        self.users = users
        self.groups = groups
        self.groupMemberDeltas = groupMemberDeltas
        self.bulkMaxOperations = bulkMaxOperations
        self.bulkMaxPayloadSize = bulkMaxPayloadSize
        self.filterMaxResults = filterMaxResults
        self.authenticationSchemes = authenticationSchemes
    }

    public enum ResourceKind: String, Sendable, CaseIterable {
        case user = "User", group = "Group"
        public var endpoint: String { self == .user ? "/Users" : "/Groups" }
        /// The RFC 7643 resource type: its core schema, no extensions.
        public var coreSchema: ResourceSchema { self == .user ? CoreSchemas.userResource : CoreSchemas.groupResource }
        public var schemaID: String { self == .user ? CoreSchemas.userID : CoreSchemas.groupID }
        /// The attribute that names a resource uniquely for people: userName, displayName.
        public var keyAttribute: String { self == .user ? "userName" : "displayName" }
        /// `/Users` or `/Groups` (any case) → its kind.
        public init?(endpoint: String) {
            if endpoint.caselessEquals("/Users") { self = .user } else if endpoint.caselessEquals("/Groups") { self = .group } else { return nil }
        }
    }

    public func resource(_ kind: ResourceKind) -> Resource? { kind == .user ? users : groups }

    /// Okta's `userManagementCapabilities`, derived rather than declared.
    public var oktaCapabilities: [String] {
        var caps: [String] = []
        guard let users else { return caps }
        if users.operations.contains(.create) {
            caps.append("PUSH_NEW_USERS")
            if users.activeWritable { caps.append("PUSH_PENDING_USERS") }
        }
        if users.canUpdate { caps.append("PUSH_PROFILE_UPDATES") }
        if users.canUpdate && users.passwordWritable { caps.append("PUSH_PASSWORD_UPDATES") }
        if users.canUpdate && users.activeWritable {
            caps.append("PUSH_USER_DEACTIVATION")
            caps.append("REACTIVATE_USERS")
        }
        if users.operations.contains(.search) {
            caps.append("IMPORT_NEW_USERS")
            caps.append("IMPORT_PROFILE_UPDATES")
            if users.lastModifiedFilter { caps.append("OPP_SCIM_INCREMENTAL_IMPORTS") }
        }
        if let groups, groups.operations.contains(.create), groups.canUpdate || groupMemberDeltas {
            caps.append("GROUP_PUSH")
        }
        return caps
    }
}

extension Capabilities {
    /// A compact description for `check --json` and logs.
    public var summary: JSON {
        func ops(_ r: Resource) -> JSON {
            var names: [String] = []
            if r.operations.contains(.create) { names.append("create") }
            if r.operations.contains(.get) { names.append("get") }
            if r.operations.contains(.replace) { names.append("replace") }
            if r.operations.contains(.patch) {
                names.append("patch")
            } else if r.canPatch {
                // Without a conditional replace, two agents on one target can lose each other's changes.
                names.append(r.operations.contains(.conditionalReplace) ? "patch(get+conditional replace)" : "patch(get+replace, unsafe with two agents)")
            }
            if r.operations.contains(.delete) { names.append("delete") }
            if r.operations.contains(.search) { names.append("search") }
            return .array(names.map(JSON.string))
        }
        var o = JSONObject()
        for kind in ResourceKind.allCases {
            guard let r = resource(kind) else { continue }
            o[kind == .user ? "Users" : "Groups"] = [
                "operations": ops(r), "sort": .bool(r.sort), "passwordWritable": .bool(r.passwordWritable),
                "activeWritable": .bool(r.activeWritable), "holdsAnyAttribute": .bool(r.holdsAnyAttribute),
                "attributes": .array(r.schema.core.attributes.map { .string($0.name) }),
                "schemaExtensions": .array(r.schema.extensions.map { .string($0.id) }),
            ]
        }
        o["groupMemberDeltas"] = .bool(groupMemberDeltas)
        o["userManagementCapabilities"] = .array(oktaCapabilities.map(JSON.string))
        return .object(o)
    }
}
