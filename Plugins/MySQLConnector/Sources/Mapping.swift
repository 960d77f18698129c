import ConnectorSDK

/// How SCIM resources map onto an application's tables: the default schema (`createSchema`)
/// or an existing one described in `settings.mapping`. Table and column names come from the
/// configuration only, are checked, and are quoted; request values never become SQL text.
struct Mapping {
    enum KeyGeneration: String { case uuid, auto }

    struct Column {
        var path: AttributePath
        var column: String
    }

    struct Active { var column: String; var trueValue: String; var falseValue: String; var nullable = false }
    struct Password { var column: String; var scheme: PasswordScheme }
    struct Members { var table: String; var groupColumn: String; var memberColumn: String; var typeColumn: String? }

    struct Table {
        var table: String
        var key: String
        var keyGeneration: KeyGeneration
        var columns: [Column]
        var attributesColumn: String?
        var created: String?
        var lastModified: String?
        var active: Active?
        var password: Password?
        var members: Members?

        func column(for path: AttributePath) -> String? {
            if path.schema == nil && path.subAttribute == nil && path.name.caselessEquals("id") { return key }
            if path.schema == nil && path.name.caselessEquals("meta"), let sub = path.subAttribute {
                if sub.caselessEquals("created") { return created }
                if sub.caselessEquals("lastModified") { return lastModified }
            }
            if let active, path.schema == nil, path.subAttribute == nil, path.name.caselessEquals("active") { return active.column }
            return columns.first { $0.path == path || ($0.path.subAttribute == "value" && path.subAttribute == nil && $0.path.parent == path) }?.column
        }

        /// Every column this table reads, in SELECT order.
        var selectColumns: [String] {
            var out = [key] + columns.map(\.column)
            if let a = active?.column { out.append(a) }
            for c in [attributesColumn, created, lastModified].compactMap({ $0 }) { out.append(c) }
            return out
        }
    }

    var users: Table
    var groups: Table?

    static func quote(_ identifier: String) -> String { "`" + identifier + "`" }

    static func checkIdentifier(_ s: String, _ key: String) throws(SCIMError) -> String {
        guard !s.isEmpty, s.count <= 64, s.utf8.allSatisfy({ $0.isASCIIIdentifierByte }) else {
            throw .invalidValue("\(key): \"\(s)\" is not a table or column name (letters, digits, _ and $ only)")
        }
        return s
    }

    // MARK: - The default schema

    static let defaultMapping = Mapping(
        users: Table(
            table: "users", key: "id", keyGeneration: .uuid,
            columns: [
                Column(path: AttributePath(name: "userName"), column: "userName"),
                Column(path: AttributePath(name: "externalId"), column: "externalId"),
                Column(path: AttributePath(name: "name", subAttribute: "givenName"), column: "givenName"),
                Column(path: AttributePath(name: "name", subAttribute: "familyName"), column: "familyName"),
                Column(path: AttributePath(name: "displayName"), column: "displayName"),
                Column(path: AttributePath(name: "emails", subAttribute: "value"), column: "email"),
                Column(path: AttributePath(name: "title"), column: "title"),
            ],
            attributesColumn: "attributes", created: "created", lastModified: "lastModified",
            active: Active(column: "active", trueValue: "1", falseValue: "0", nullable: true),
            password: Password(column: "password", scheme: .yescrypt)),
        groups: Table(
            table: "groups", key: "id", keyGeneration: .uuid,
            columns: [
                Column(path: AttributePath(name: "displayName"), column: "displayName"),
                Column(path: AttributePath(name: "externalId"), column: "externalId"),
            ],
            attributesColumn: "attributes", created: "created", lastModified: "lastModified",
            members: Members(table: "group_members", groupColumn: "group_id", memberColumn: "member_id", typeColumn: "member_type")))

    static let createStatements = [
        """
        CREATE TABLE IF NOT EXISTS `users` (
          `id` CHAR(36) NOT NULL PRIMARY KEY,
          `userName` VARCHAR(255) NOT NULL,
          `externalId` VARCHAR(255) NULL,
          `active` TINYINT(1) NULL,
          `givenName` VARCHAR(255) NULL,
          `familyName` VARCHAR(255) NULL,
          `displayName` VARCHAR(255) NULL,
          `email` VARCHAR(320) NULL,
          `title` VARCHAR(255) NULL,
          `password` VARCHAR(255) NULL,
          `attributes` LONGTEXT NULL,
          `created` DATETIME(3) NOT NULL,
          `lastModified` DATETIME(3) NOT NULL,
          UNIQUE KEY `users_userName` (`userName`),
          KEY `users_lastModified` (`lastModified`)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
        """,
        """
        CREATE TABLE IF NOT EXISTS `groups` (
          `id` CHAR(36) NOT NULL PRIMARY KEY,
          `displayName` VARCHAR(255) NOT NULL,
          `externalId` VARCHAR(255) NULL,
          `attributes` LONGTEXT NULL,
          `created` DATETIME(3) NOT NULL,
          `lastModified` DATETIME(3) NOT NULL,
          KEY `groups_displayName` (`displayName`)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
        """,
        """
        CREATE TABLE IF NOT EXISTS `group_members` (
          `group_id` CHAR(36) NOT NULL,
          `member_id` VARCHAR(64) NOT NULL,
          `member_type` VARCHAR(5) NOT NULL DEFAULT 'User',
          PRIMARY KEY (`group_id`, `member_id`),
          KEY `group_members_member` (`member_id`),
          CONSTRAINT `group_members_group` FOREIGN KEY (`group_id`) REFERENCES `groups` (`id`) ON DELETE CASCADE
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
        """,
    ]

    // MARK: - A described mapping

    init(users: Table, groups: Table?) {
        self.users = users
        self.groups = groups
    }

    init(settings m: JSON) throws(SCIMError) {
        guard case .object = m else { throw .invalidValue("settings.mapping must be an object") }
        guard let u = m["users"] else { throw .invalidValue("settings.mapping.users is required") }
        users = try Self.table(u, "settings.mapping.users", isGroup: false)
        groups = try m["groups"].map { g throws(SCIMError) in try Self.table(g, "settings.mapping.groups", isGroup: true) }
    }

    static func table(_ t: JSON, _ key: String, isGroup: Bool) throws(SCIMError) -> Table {
        func string(_ k: String, required: Bool = false) throws(SCIMError) -> String? {
            guard let v = t[k] else {
                if required { throw .invalidValue("\(key).\(k) is required") }
                return nil
            }
            guard let s = v.stringValue else { throw .invalidValue("\(key).\(k) must be a string") }
            return try checkIdentifier(s, "\(key).\(k)")
        }
        var columns: [Column] = []
        guard let cols = t["columns"]?.objectValue else { throw .invalidValue("\(key).columns is required: SCIM attribute → column") }
        for c in cols {
            guard let path = AttributePath(parsing: c.key) else { throw .invalidValue("\(key).columns: \"\(c.key)\" is not a SCIM attribute path") }
            guard let col = c.value.stringValue else { throw .invalidValue("\(key).columns.\(c.key) must be a column name") }
            let schema = isGroup ? CoreSchemas.groupResource : CoreSchemas.userResource
            columns.append(Column(path: schema.canonical(path), column: try checkIdentifier(col, "\(key).columns.\(c.key)")))
        }
        let required = isGroup ? "displayName" : "userName"
        guard columns.contains(where: { $0.path.name == required && $0.path.subAttribute == nil }) else {
            throw .invalidValue("\(key).columns must map \(required)")
        }
        var active: Active?
        if let a = t["active"] {
            guard let col = a["column"]?.stringValue else { throw .invalidValue("\(key).active.column is required") }
            active = Active(
                column: try checkIdentifier(col, "\(key).active.column"),
                trueValue: a["true"].map { $0.stringValue ?? $0.serialized() } ?? "1",
                falseValue: a["false"].map { $0.stringValue ?? $0.serialized() } ?? "0",
                nullable: a["nullable"]?.boolValue ?? false)
        }
        var password: Password?
        if let p = t["password"] {
            guard let col = p["column"]?.stringValue else { throw .invalidValue("\(key).password.column is required") }
            guard let schemeName = p["scheme"]?.stringValue, let scheme = PasswordScheme(rawValue: schemeName) else {
                throw .invalidValue("\(key).password.scheme must be one of \(PasswordScheme.allCases.map(\.rawValue).joined(separator: ", ")) (plain only when you mean it)")
            }
            password = Password(column: try checkIdentifier(col, "\(key).password.column"), scheme: scheme)
        }
        var members: Members?
        if let m = t["members"] {
            guard let table = m["table"]?.stringValue, let g = m["group"]?.stringValue, let u = m["member"]?.stringValue else {
                throw .invalidValue("\(key).members needs table, group and member")
            }
            members = Members(
                table: try checkIdentifier(table, "\(key).members.table"), groupColumn: try checkIdentifier(g, "\(key).members.group"),
                memberColumn: try checkIdentifier(u, "\(key).members.member"),
                typeColumn: try m["type"]?.stringValue.map { s throws(SCIMError) in try checkIdentifier(s, "\(key).members.type") })
        }
        let generation = try t["keyGeneration"].map { v throws(SCIMError) -> KeyGeneration in
            guard let s = v.stringValue, let g = KeyGeneration(rawValue: s) else { throw .invalidValue("\(key).keyGeneration must be uuid or auto") }
            return g
        } ?? .auto
        return Table(
            table: try string("table", required: true)!, key: try string("key", required: true)!, keyGeneration: generation,
            columns: columns, attributesColumn: try string("attributes"), created: try string("created"),
            lastModified: try string("lastModified"), active: isGroup ? nil : active, password: isGroup ? nil : password,
            members: isGroup ? members : nil)
    }
}

extension UInt8 {
    var isASCIIIdentifierByte: Bool {
        (self >= 48 && self <= 57) || (self >= 65 && self <= 90) || (self >= 97 && self <= 122) || self == 95 || self == 36
    }
}
