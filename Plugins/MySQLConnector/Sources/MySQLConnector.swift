import ConnectorSDK
import Foundation

func currentTime() -> Double { Date().timeIntervalSince1970 }

/// Users and groups in a MySQL/MariaDB application database, over libmariadb, prepared
/// statements only.
public final class MySQLConnector: Connector, UserBatchCreating, UserReading, UserReplacing, UserDeleting, UserSearching,
    GroupCreating, GroupReading, GroupReplacing, GroupDeleting, GroupSearching, GroupMembership, @unchecked Sendable
{
    // @unchecked: `pool` synchronises itself; `schemaReady` is guarded by `schemaLock`.
    public static let name = "mysql"
    public static let version = "1.0.0"
    public static let isConcurrent = true

    let pool: ConnectionPool<MariaDBConnection>
    let mapping: Mapping
    let createSchema: Bool
    let host: ConnectorHost
    private var schemaReady = false
    private let schemaLock = NSLock()
    /// Per table, whether its lastModified column counts milliseconds (see `versionColumn`);
    /// guarded by `schemaLock`.
    private var millisecondColumns: [String: Bool] = [:]
    /// Where running imports by startIndex stopped (`search`).
    let pageChains = PageChains()

    public init(settings: JSON, host: ConnectorHost) throws {
        self.host = host
        guard let database = settings["database"]?.stringValue, !database.isEmpty else {
            throw SCIMError.invalidValue("settings.database is missing")
        }
        guard let user = settings["user"]?.stringValue else { throw SCIMError.invalidValue("settings.user is missing") }
        let tls = try settings["tls"].map { v throws(SCIMError) -> ConnectionSettings.TLSMode in
            guard let s = v.stringValue, let m = ConnectionSettings.TLSMode(rawValue: s) else {
                throw .invalidValue("settings.tls must be off, required or verify-ca")
            }
            return m
        } ?? .off
        if tls == .verifyCA && settings["caFile"]?.stringValue == nil { throw SCIMError.invalidValue("settings.caFile is required with tls: verify-ca") }
        let caFile = try settings["caFile"]?.stringValue.map { f throws(SCIMError) in try host.readableFile(f, setting: "settings.caFile") }
        let connection = ConnectionSettings(
            host: settings["socket"] == nil ? (settings["host"]?.stringValue ?? "127.0.0.1") : nil,
            port: UInt32(settings["port"]?.intValue ?? 3306), socket: settings["socket"]?.stringValue, user: user,
            password: settings["password"]?.stringValue ?? "", database: database, tls: tls,
            caFile: caFile, connectTimeout: UInt32(settings["connectTimeout"]?.intValue ?? 3))
        createSchema = settings["createSchema"]?.boolValue ?? false
        if createSchema && settings["mapping"] != nil {
            throw SCIMError.invalidValue("settings: use either createSchema (the default tables) or mapping (your tables), not both")
        }
        if let m = settings["mapping"] {
            mapping = try Mapping(settings: m)
        } else if createSchema {
            mapping = Mapping.defaultMapping
        } else {
            throw SCIMError.invalidValue("settings: give createSchema: true to use the default tables, or a mapping of your tables")
        }
        pool = ConnectionPool(size: settings["poolSize"]?.intValue ?? 8, connect: { try MariaDBConnection(connection) }, isBroken: { $0.broken })
        do { try ensureSchema() } catch {
            host.log(.warning, "MariaDB not reachable yet (\(error)); will retry on the first request")
        }
    }

    public func close() { pool.closeAll() }

    /// Creates the default tables once, on the first connection that works.
    func ensureSchema() throws {
        guard createSchema else { return }
        schemaLock.lock()
        defer { schemaLock.unlock() }
        guard !schemaReady else { return }
        try pool.withConnection { c in for s in Mapping.createStatements { try c.execute(s) } }
        schemaReady = true
    }

    func db<T>(_ body: (MariaDBConnection) throws -> T) throws -> T {
        try ensureSchema()
        return try pool.withConnection(body)
    }

    /// A read: run again on a new connection if the pooled one died with a server restart.
    func read<T>(_ body: (MariaDBConnection) throws -> T) throws -> T {
        try ensureSchema()
        return try pool.withConnection(idempotent: true, body)
    }

    public func describe() -> JSON {
        func facts(_ t: Mapping.Table, isUser: Bool) -> JSON {
            var o: JSONObject = ["sort": true]
            if t.attributesColumn == nil {
                var names = t.columns.map { $0.path.description }
                if t.active != nil { names.append("active") }
                if t.password != nil { names.append("password") }
                if t.members != nil { names.append("members") }
                o["attributes"] = .array(names.map(JSON.string))
            }
            if isUser {
                o["passwordWritable"] = .bool(t.password != nil)
                o["activeWritable"] = .bool(t.active != nil)
            }
            o["filterAttributes"] = .array(t.columns.map { .string($0.path.description) })
            o["filterOperators"] = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"]
            return .object(o)
        }
        var out: JSONObject = ["users": facts(mapping.users, isUser: true)]
        out["groups"] = mapping.groups.map { facts($0, isUser: false) } ?? false
        return .object(out)
    }

    // MARK: - test: connectivity, tables, columns, privileges

    public func test() throws -> String {
        try db { c in
            _ = try c.execute("SELECT 1")
            var problems: [String] = []
            var tables = [mapping.users]
            if let g = mapping.groups { tables.append(g) }
            var names: [(String, [String])] = tables.map { ($0.table, $0.selectColumns + [$0.password?.column].compactMap { $0 }) }
            if let m = mapping.groups?.members { names.append((m.table, [m.groupColumn, m.memberColumn] + [m.typeColumn].compactMap { $0 })) }
            for (table, columns) in names {
                let existing = Set(try c.execute(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", [.string(table)]
                ).rows.compactMap { $0[0] })
                if existing.isEmpty { problems.append("table \(table) does not exist"); continue }
                let missing = columns.filter { !existing.contains($0) }
                if !missing.isEmpty { problems.append("table \(table) has no column \(missing.joined(separator: ", "))") }
                let privileges = Set(try c.execute("""
                    SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = @g
                    UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = @g AND TABLE_SCHEMA = DATABASE()
                    UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = @g AND TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?
                    """.replacingOccurrences(of: "@g", with: "CONCAT('''', REPLACE(CURRENT_USER(), '@', '''@'''), '''')"), [.string(table)]
                ).rows.compactMap { $0[0] })
                let lacking = ["SELECT", "INSERT", "UPDATE", "DELETE"].filter { !privileges.contains($0) }
                if !lacking.isEmpty { problems.append("no \(lacking.joined(separator: ", ")) privilege on \(table)") }
            }
            if !problems.isEmpty { throw SCIMError(status: 503, detail: problems.joined(separator: "; ")) }
            let count = try c.execute("SELECT COUNT(*) FROM \(Mapping.quote(mapping.users.table))").rows.first?[0] ?? "0"
            return "MariaDB reachable; \(count) users in \(mapping.users.table)"
        }
    }

    // MARK: - Users

    func codec(_ kind: Capabilities.ResourceKind) -> (Mapping.Table, RowCodec) {
        let t = kind == .user ? mapping.users : mapping.groups!
        return (t, RowCodec(table: t, kind: kind))
    }

    /// Exact (case-sensitive) match on a key column that can still use its index.
    static func exact(_ column: String) -> String {
        let c = Mapping.quote(column)
        return "\(c) = ? AND BINARY \(c) = ?"
    }

    func selectSQL(_ t: Mapping.Table) -> String {
        "SELECT " + t.selectColumns.map(Mapping.quote).joined(separator: ", ") + " FROM " + Mapping.quote(t.table)
    }

    /// One resource by id. `forUpdate`: in a transaction, the row is locked until it ends (a
    /// conditional replace reads and writes under that lock; member changes take the same one).
    func fetch(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ id: String, forUpdate: Bool = false) throws -> JSON {
        let (t, codec) = codec(kind)
        let sql = selectSQL(t) + " WHERE \(Self.exact(t.key))" + (forUpdate ? " FOR UPDATE" : "")
        guard let row = try c.execute(sql, [.string(id), .string(id)]).rows.first else {
            throw SCIMError.notFound("\(kind.rawValue) \(id) not found")
        }
        var r = codec.resource(row)
        if kind == .group { r["members"] = .array(try members(c, of: [id])[id] ?? []) }
        return r
    }

    typealias Row = [(column: String, value: SQLValue)]

    /// The columns a resource writes: mapped attributes, active, the hashed password and the
    /// modification time.
    func changedColumns(_ kind: Capabilities.ResourceKind, _ resource: JSON, now: String) throws -> Row {
        let (t, codec) = codec(kind)
        var values: Row = try codec.columnValues(resource).map { ($0.0, $0.1) }
        if let p = t.password, case .string(let pw)? = resource["password"] { values.append((p.column, .string(try p.scheme.hash(pw)))) }
        if let m = t.lastModified { values.append((m, .string(now))) }
        return values
    }

    /// A new row: the changed columns, the creation time and, for uuid keys, the new id first.
    func newRow(_ kind: Capabilities.ResourceKind, _ resource: JSON, now: String = RowCodec.now()) throws -> Row {
        let t = codec(kind).0
        var values = try changedColumns(kind, resource, now: now)
        if let cr = t.created { values.append((cr, .string(now))) }
        if t.keyGeneration == .uuid { values.insert((t.key, .string(ResourceID.new())), at: 0) }
        return values
    }

    /// The new rows of a batch. A password hash is slow on purpose (yescrypt: tens of
    /// milliseconds), so a batch with passwords hashes them on all cores at once rather than
    /// one after another on the thread that writes the batch.
    func newRows(_ kind: Capabilities.ResourceKind, _ resources: [JSON], now: String) -> [Result<Row, any Error>] {
        guard resources.count > 1, codec(kind).0.password != nil, resources.contains(where: { $0["password"] != nil }) else {
            return resources.map { r in Result { try newRow(kind, r, now: now) } }
        }
        let rows = Slots<Result<Row, any Error>>(count: resources.count)
        DispatchQueue.concurrentPerform(iterations: resources.count) { i in
            rows.initialize(i, to: Result { try newRow(kind, resources[i], now: now) })
        }
        return rows.take()
    }

    /// Slots that concurrent iterations fill, each its own index once.
    final class Slots<T>: @unchecked Sendable {
        // @unchecked: each slot is written by one iteration only, and read after all of them.
        private let base: UnsafeMutablePointer<T>
        private let count: Int
        init(count: Int) { self.count = count; base = .allocate(capacity: count) }
        func initialize(_ i: Int, to value: T) { (base + i).initialize(to: value) }
        /// The values, once every slot is filled.
        func take() -> [T] {
            defer { base.deinitialize(count: count) }
            return Array(UnsafeBufferPointer(start: base, count: count))
        }
        deinit { base.deallocate() }
    }

    /// Writes a resource's columns. lastModified never goes back nor stays: each write sets it
    /// to now, or a millisecond past its value if that is later, so that it is the row's version.
    /// `ifLastModified`: only if the row still has that version (a conditional replace in one
    /// statement, compare and write atomic in InnoDB); another one is a 412.
    func update(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ resource: JSON, id: String, ifLastModified version: String? = nil) throws {
        let t = codec(kind).0
        let values = try changedColumns(kind, resource, now: RowCodec.now())
        let sets = values.map { v in
            let c = Mapping.quote(v.column)
            return v.column == t.lastModified ? "\(c) = GREATEST(?, \(c) + INTERVAL 1000 MICROSECOND)" : "\(c) = ?"
        }.joined(separator: ", ")
        var sql = "UPDATE \(Mapping.quote(t.table)) SET \(sets) WHERE \(Self.exact(t.key))"
        var params = values.map(\.value) + [.string(id), .string(id)]
        if let version, let lm = t.lastModified {
            sql += " AND \(Mapping.quote(lm)) = ?"
            params.append(.string(version))
        }
        let r = try c.execute(sql, params)
        if r.affectedRows == 0 {
            guard version != nil, try c.execute("SELECT 1 FROM \(Mapping.quote(t.table)) WHERE \(Self.exact(t.key))", [.string(id), .string(id)]).rows.count > 0 else {
                throw SCIMError.notFound("\(kind.rawValue) \(id) not found")
            }
            throw SCIMError.changed("\(kind.rawValue) \(id) changed since it was read")
        }
    }

    /// The version a conditional replace compares, when the table has one: its lastModified as
    /// the agent read it, if the column keeps milliseconds (a coarser one could stay the same
    /// across two writes in a second). nil: the row is compared whole, under a lock.
    func versionColumn(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ expected: JSON) throws -> String? {
        let t = codec(kind).0
        guard let lm = t.lastModified, let text = expected["meta"]?["lastModified"]?.stringValue,
            text.count > 20, text.hasSuffix("Z")
        else { return nil }
        schemaLock.lock()
        let known = millisecondColumns[t.table]
        schemaLock.unlock()
        let precise: Bool
        if let known {
            precise = known
        } else {
            let row = try c.execute("SELECT DATA_TYPE, DATETIME_PRECISION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                                    [.string(t.table), .string(lm)]).rows.first
            precise = ["datetime", "timestamp"].contains(row?[0]?.lowercased() ?? "") && (Int(row?[1] ?? "") ?? 0) >= 3
            schemaLock.lock()
            millisecondColumns[t.table] = precise
            schemaLock.unlock()
        }
        // As the codec wrote it: 2026-11-29T04:45:24.576Z → 2026-11-29 04:45:24.576
        return precise ? String(text.prefix(10)) + " " + String(text.dropFirst(11).dropLast()) : nil
    }

    /// `INSERT INTO t (columns) VALUES (?, …), …` for `rows` rows of these columns.
    func insertSQL(_ t: Mapping.Table, columns: [String], rows: Int) -> String {
        let tuple = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        return "INSERT INTO \(Mapping.quote(t.table)) (" + columns.map(Mapping.quote).joined(separator: ", ") + ") VALUES "
            + Array(repeating: tuple, count: rows).joined(separator: ", ")
    }

    /// Inserts one row and returns the new key.
    func insert(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ row: Row) throws -> String {
        let t = codec(kind).0
        let r = try c.execute(insertSQL(t, columns: row.map(\.column), rows: 1), row.map(\.value))
        if t.keyGeneration == .uuid, let id = row.first?.value, case .string(let s) = id { return s }
        return String(r.insertID)
    }

    /// Inserts rows that have the same columns in one statement (atomic: all or none) and
    /// returns the stored rows, in order, as `selectColumns` reads them. MariaDB 10.5+.
    func insertReturning(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ rows: [Row]) throws -> [[String?]] {
        let t = codec(kind).0
        let sql = insertSQL(t, columns: rows[0].map(\.column), rows: rows.count)
            + " RETURNING " + t.selectColumns.map(Mapping.quote).joined(separator: ", ")
        let stored = try c.execute(sql, rows.flatMap { $0.map(\.value) }).rows
        guard stored.count == rows.count else {
            throw SCIMError(status: 500, detail: "MariaDB returned \(stored.count) rows for \(rows.count) inserted")
        }
        return stored
    }

    /// Creates one user on `c` and reads back what was stored: in the same round trip where
    /// the server can, else with a SELECT.
    func createUser(_ c: MariaDBConnection, _ row: Row) throws -> JSON {
        if c.supportsReturning { return codec(.user).1.resource(try insertReturning(c, .user, [row])[0]) }
        return try fetch(c, .user, try insert(c, .user, row))
    }

    /// The users the agent batches (group commit) share one multi-row `INSERT … RETURNING`:
    /// one round trip and one commit for all of them. If the statement fails (a taken userName,
    /// a bad value), each row is inserted alone, so only the bad one fails. A lost connection
    /// fails the rows not yet written with 503.
    public func createUsers(_ resources: [JSON]) -> [Result<JSON, any Error>] {
        var results = [Result<JSON, any Error>?](repeating: nil, count: resources.count)
        var rows: [(index: Int, row: Row)] = []
        let now = RowCodec.now()  // one statement, one commit: one creation time
        for (i, row) in newRows(.user, resources, now: now).enumerated() {
            switch row {
            case .success(let row): rows.append((i, row))
            case .failure(let error): results[i] = .failure(error)
            }
        }
        if !rows.isEmpty {
            for (i, outcome) in zip(rows.map(\.index), insertUsers(rows.map(\.row))) { results[i] = outcome }
        }
        return results.map { $0! }
    }

    func insertUsers(_ rows: [Row]) -> [Result<JSON, any Error>] {
        do {
            return try db { c in
                let codec = codec(.user).1
                var results = [Result<JSON, any Error>?](repeating: nil, count: rows.count)
                if rows.count > 1 && c.supportsReturning {
                    // Rows with the same columns (the usual case) go into one statement.
                    var byColumns: [[String]: [Int]] = [:]
                    for (i, row) in rows.enumerated() { byColumns[row.map(\.column), default: []].append(i) }
                    for indices in byColumns.values where indices.count > 1 {
                        do {
                            let stored = try insertReturning(c, .user, indices.map { rows[$0] })
                            for (i, row) in zip(indices, stored) { results[i] = .success(codec.resource(row)) }
                        } catch where c.broken {
                            for i in indices { results[i] = .failure(error) }
                        } catch {
                            // Left to the row-by-row inserts below.
                        }
                    }
                }
                return rows.indices.map { i in results[i] ?? Result { try createUser(c, rows[i]) } }
            }
        } catch {
            return Array(repeating: .failure(error), count: rows.count)
        }
    }

    public func getUser(id: String) throws -> JSON {
        try read { c in try fetch(c, .user, id) }
    }

    public func replaceUser(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON {
        try db { c in
            guard let expected else {
                try update(c, .user, resource, id: id)
                return try fetch(c, .user, id)
            }
            if let version = try versionColumn(c, .user, expected) {
                try update(c, .user, resource, id: id, ifLastModified: version)
                return try fetch(c, .user, id)
            }
            return try c.transaction {
                try check(c, .user, id, expected)
                try update(c, .user, resource, id: id)
                return try fetch(c, .user, id)
            }
        }
    }

    /// A conditional replace's check: the row, locked until the transaction ends, still reads
    /// as the version the agent computed its change from. Another agent on the same database
    /// waits for the lock, then finds the row changed.
    func check(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ id: String, _ expected: JSON) throws {
        let current = try fetch(c, kind, id, forUpdate: true)
        guard ResourceVersion.unchanged(current, since: expected) else {
            throw SCIMError.changed("\(kind.rawValue) \(id) changed since it was read")
        }
    }

    public func deleteUser(id: String) throws {
        try db { c in
            try c.transaction {
                if let m = mapping.groups?.members {
                    try c.execute("DELETE FROM \(Mapping.quote(m.table)) WHERE \(Self.exact(m.memberColumn))", [.string(id), .string(id)])
                }
                let r = try c.execute("DELETE FROM \(Mapping.quote(mapping.users.table)) WHERE \(Self.exact(mapping.users.key))", [.string(id), .string(id)])
                if r.affectedRows == 0 { throw SCIMError.notFound("User \(id) not found") }
            }
        }
    }

    public func searchUsers(_ query: Query) throws -> SearchResult {
        try read { c in try search(c, .user, query) }
    }

    /// Pushes what it can: the filter's pushable part as WHERE, the sort as ORDER BY, and —
    /// when the whole filter and the sort were pushed — the page as LIMIT/OFFSET with COUNT.
    /// Otherwise the rows the WHERE clause lets through go one at a time, as MariaDB sends
    /// them, through a `SearchPage`: a reply holds a page, not the table (a table of 100,000
    /// users is about 40 MB of JSON).
    func search(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ query: Query) throws -> SearchResult {
        let (t, codec) = codec(kind)
        let translator = SQLFilter(table: t, kind: kind)
        let clause = query.filter.flatMap { translator.clause($0) }
        let exact = query.filter == nil || clause?.exact == true
        let order = query.sortBy.flatMap { translator.orderBy($0, descending: query.sortOrder == .descending) }
        let sorted = query.sortBy == nil || order != nil
        var sql = selectSQL(t)
        var params: [SQLValue] = []
        if let clause { sql += " WHERE " + clause.sql; params = clause.params }
        sql += " ORDER BY " + (order.map { $0 + ", " } ?? "") + Mapping.quote(t.key)
        let count = query.count ?? 1000
        if exact && query.sortBy == nil && count > 0, let cursor = query.targetCursor {
            return try cursorPage(c, kind, clause, cursor: cursor, count: count, withoutMembers: query.withoutMembers)
        }
        if exact && sorted {
            // An import by startIndex asks for the page that follows the one before: in the
            // key's order that page continues from the last key (keyset paging), so no page
            // costs more than the one before it. A jump, or a sorted query, takes OFFSET.
            let chain = query.sortBy == nil && count > 0 ? PageChains.Key(kind: kind, clause: clause?.sql ?? "", params: params, count: count) : nil
            let rows: [[String?]]
            let total: Int
            if let chain, let continued = pageChains.take(chain, startIndex: query.startIndex) {
                let where_ = (clause.map { " WHERE (\($0.sql)) AND " } ?? " WHERE ") + Mapping.quote(t.key) + " > ?"
                rows = try c.execute(selectSQL(t) + where_ + " ORDER BY " + Mapping.quote(t.key) + " LIMIT ?",
                                     params + [.string(continued.lastKey), .int(Int64(count))]).rows
                total = continued.total
            } else {
                var countSQL = "SELECT COUNT(*) FROM \(Mapping.quote(t.table))"
                if let clause { countSQL += " WHERE " + clause.sql }
                total = Int(try c.execute(countSQL, params).rows.first?[0] ?? "0") ?? 0
                rows = try c.execute(sql + " LIMIT ? OFFSET ?", params + [.int(Int64(count)), .int(Int64(query.startIndex - 1))]).rows
            }
            if let chain, rows.count == count, let last = rows.last?[0] {
                pageChains.remember(chain, next: query.startIndex + rows.count, lastKey: last, total: total)
            }
            let page = rows.map(codec.resource)
            return SearchResult(resources: query.withoutMembers ? page : try withMembers(c, kind, page), totalResults: total, filtered: true, sorted: true, paged: true)
        }
        var page = SearchPage(query, filtered: exact, sorted: sorted, schema: translator.schema, noun: "\(kind.rawValue)s")
        if kind == .group {
            // A group's members may be filtered on: candidates get theirs first (groups are
            // few next to users; the rows are read whole).
            let groups = try c.execute(sql, params).rows.map(codec.resource)
            for g in query.withoutMembers ? groups : try withMembers(c, kind, groups) { try page.offer(g) }
        } else {
            try c.forEachRow(sql, params) { row throws(SCIMError) in try page.offer(codec.resource(row)) }
        }
        return page.result
    }

    /// A page of an import by RFC 9865 cursor, by the connector's own cursor (ABI 1.4):
    /// `k1.<total>.<last key>`, continued by keyset (`WHERE key > last`). It holds all the
    /// import needs, so any agent on the database continues it, and nothing is remembered.
    func cursorPage(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ clause: SQLFilter.Clause?, cursor: String,
                    count: Int, withoutMembers: Bool) throws -> SearchResult {
        let (t, codec) = codec(kind)
        var conditions = clause.map { ["(\($0.sql))"] } ?? []
        var params = clause?.params ?? []
        let total: Int
        if cursor.isEmpty {
            total = Int(try c.execute("SELECT COUNT(*) FROM \(Mapping.quote(t.table))" + (clause.map { " WHERE " + $0.sql } ?? ""), params).rows.first?[0] ?? "0") ?? 0
        } else {
            let parts = cursor.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "k1", let n = Int(parts[1]), n >= 0 else {
                throw SCIMError(status: 400, scimType: .invalidCursor, detail: "the cursor is not one this server issued: send cursor empty for the first page, then each reply's nextCursor")
            }
            total = n
            conditions.append(Mapping.quote(t.key) + " > ?")
            params.append(.string(String(parts[2])))
        }
        // One row more than the page says whether another page follows.
        var rows = try c.execute(selectSQL(t) + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
                                 + " ORDER BY " + Mapping.quote(t.key) + " LIMIT ?", params + [.int(Int64(count + 1))]).rows
        let more = rows.count > count
        if more { rows.removeLast() }
        let page = rows.map(codec.resource)
        var result = SearchResult(resources: withoutMembers ? page : try withMembers(c, kind, page), totalResults: total, filtered: true, sorted: true, paged: true)
        result.nextCursor = more ? "k1.\(total).\(rows.last?[0] ?? "")" : ""
        return result
    }

    /// Groups with their members (one statement per 100 groups); users as they are.
    func withMembers(_ c: MariaDBConnection, _ kind: Capabilities.ResourceKind, _ resources: [JSON]) throws -> [JSON] {
        guard kind == .group else { return resources }
        var out = resources
        let members = try members(c, of: resources.compactMap { $0["id"]?.stringValue })
        for i in out.indices { out[i]["members"] = .array(members[out[i]["id"]?.stringValue ?? ""] ?? []) }
        return out
    }

    // MARK: - Groups

    /// The members of these groups, by group id: one statement per 100 groups, so a page
    /// of groups costs one query, not one per group.
    func members(_ c: MariaDBConnection, of groupIDs: [String]) throws -> [String: [JSON]] {
        guard let m = mapping.groups?.members, !groupIDs.isEmpty else { return [:] }
        let chunk = 100
        let sql = "SELECT \(Mapping.quote(m.groupColumn)), \(Mapping.quote(m.memberColumn))" + (m.typeColumn.map { ", " + Mapping.quote($0) } ?? "")
            + " FROM \(Mapping.quote(m.table)) WHERE \(Mapping.quote(m.groupColumn)) IN (" + Array(repeating: "?", count: chunk).joined(separator: ", ")
            + ") ORDER BY \(Mapping.quote(m.memberColumn))"
        let wanted = Set(groupIDs)
        var out: [String: [JSON]] = [:]
        for start in stride(from: 0, to: groupIDs.count, by: chunk) {
            var ids = Array(groupIDs[start..<min(start + chunk, groupIDs.count)])
            ids += Array(repeating: ids[ids.count - 1], count: chunk - ids.count)  // one statement whatever the page size
            for row in try c.execute(sql, ids.map(SQLValue.string)).rows {
                // IN compares under the column's collation; a group's id matches exactly.
                guard let group = row[0], wanted.contains(group) else { continue }
                out[group, default: []].append(["value": .string(row[1] ?? ""), "type": .string(row.count > 2 ? (row[2] ?? "User") : "User")])
            }
        }
        return out
    }

    func memberType(_ c: MariaDBConnection, _ id: String) throws -> String? {
        let u = mapping.users
        if try !c.execute("SELECT 1 FROM \(Mapping.quote(u.table)) WHERE \(Self.exact(u.key))", [.string(id), .string(id)]).rows.isEmpty { return "User" }
        if let g = mapping.groups, try !c.execute("SELECT 1 FROM \(Mapping.quote(g.table)) WHERE \(Self.exact(g.key))", [.string(id), .string(id)]).rows.isEmpty {
            return "Group"
        }
        return nil
    }

    func addMembers(_ c: MariaDBConnection, _ groupID: String, _ ids: [String]) throws {
        guard let m = mapping.groups?.members else { throw SCIMError.notImplemented("the mapping has no membership table") }
        for id in ids {
            guard let type = try memberType(c, id) else { throw SCIMError.invalidValue("member \(id) is neither a user nor a group") }
            if let tc = m.typeColumn {
                try c.execute("INSERT IGNORE INTO \(Mapping.quote(m.table)) (\(Mapping.quote(m.groupColumn)), \(Mapping.quote(m.memberColumn)), \(Mapping.quote(tc))) VALUES (?, ?, ?)",
                              [.string(groupID), .string(id), .string(type)])
            } else {
                try c.execute("INSERT IGNORE INTO \(Mapping.quote(m.table)) (\(Mapping.quote(m.groupColumn)), \(Mapping.quote(m.memberColumn))) VALUES (?, ?)",
                              [.string(groupID), .string(id)])
            }
        }
    }

    func touch(_ c: MariaDBConnection, _ groupID: String) throws {
        guard let g = mapping.groups else { return }
        let r: MariaDBConnection.Result
        if let lm = g.lastModified {
            let c2 = Mapping.quote(lm)
            r = try c.execute("UPDATE \(Mapping.quote(g.table)) SET \(c2) = GREATEST(?, \(c2) + INTERVAL 1000 MICROSECOND) WHERE \(Self.exact(g.key))",
                              [.string(RowCodec.now()), .string(groupID), .string(groupID)])
        } else {
            // Locked as an update would lock it, so a conditional replace of the group waits.
            r = try c.execute("SELECT 1 FROM \(Mapping.quote(g.table)) WHERE \(Self.exact(g.key)) FOR UPDATE", [.string(groupID), .string(groupID)])
            if r.rows.isEmpty { throw SCIMError.notFound("Group \(groupID) not found") }
            return
        }
        if r.affectedRows == 0 { throw SCIMError.notFound("Group \(groupID) not found") }
    }

    static func memberIDs(_ resource: JSON) -> [String] {
        var seen = Set<String>()
        return (resource["members"]?.arrayValue ?? []).compactMap { $0["value"]?.stringValue }.filter { seen.insert($0).inserted }
    }

    public func createGroup(_ resource: JSON) throws -> JSON {
        try db { c in
            let id = try c.transaction { () throws -> String in
                let id = try insert(c, .group, try newRow(.group, resource))
                try addMembers(c, id, Self.memberIDs(resource))
                return id
            }
            return try fetch(c, .group, id)
        }
    }

    public func getGroup(id: String) throws -> JSON {
        try read { c in try fetch(c, .group, id) }
    }

    public func replaceGroup(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON {
        try db { c in
            let version = try expected.flatMap { try versionColumn(c, .group, $0) }
            try c.transaction {
                if let expected, version == nil { try check(c, .group, id, expected) }
                // With a version, the update compares it; a member change advances it (`touch`).
                try update(c, .group, resource, id: id, ifLastModified: version)
                if let m = mapping.groups?.members {
                    try c.execute("DELETE FROM \(Mapping.quote(m.table)) WHERE \(Self.exact(m.groupColumn))", [.string(id), .string(id)])
                }
                try addMembers(c, id, Self.memberIDs(resource))
            }
            return try fetch(c, .group, id)
        }
    }

    public func deleteGroup(id: String) throws {
        try db { c in
            try c.transaction {
                guard let g = mapping.groups else { return }
                if let m = g.members {
                    try c.execute("DELETE FROM \(Mapping.quote(m.table)) WHERE \(Self.exact(m.groupColumn))", [.string(id), .string(id)])
                }
                let r = try c.execute("DELETE FROM \(Mapping.quote(g.table)) WHERE \(Self.exact(g.key))", [.string(id), .string(id)])
                if r.affectedRows == 0 { throw SCIMError.notFound("Group \(id) not found") }
            }
        }
    }

    public func searchGroups(_ query: Query) throws -> SearchResult {
        try read { c in try search(c, .group, query) }
    }

    public func addMembers(groupID: String, memberIDs: [String]) throws {
        try db { c in
            try c.transaction {
                try touch(c, groupID)
                try addMembers(c, groupID, memberIDs)
            }
        }
    }

    public func removeMembers(groupID: String, memberIDs: [String]) throws {
        guard let m = mapping.groups?.members else { throw SCIMError.notImplemented("the mapping has no membership table") }
        try db { c in
            try c.transaction {
                try touch(c, groupID)
                for id in memberIDs {
                    try c.execute("DELETE FROM \(Mapping.quote(m.table)) WHERE \(Self.exact(m.groupColumn)) AND \(Self.exact(m.memberColumn))",
                                  [.string(groupID), .string(groupID), .string(id), .string(id)])
                }
            }
        }
    }
}

/// Where each running import stopped: for a query (filter, parameters, page size) and the
/// startIndex its next page will ask for, the last key it was given and the total counted on
/// its first page. An import's later pages reuse that total: counting again would read the
/// whole table once per page. A chain not continued within `timeout` seconds is forgotten,
/// and at most `limit` are kept (imports running at once, each with its own chain).
final class PageChains: @unchecked Sendable {
    // @unchecked: `chains` is guarded by `lock`.
    struct Key: Hashable {
        var kind: Capabilities.ResourceKind
        var clause: String
        var params: [String?]
        var count: Int

        init(kind: Capabilities.ResourceKind, clause: String, params: [SQLValue], count: Int) {
            self.kind = kind
            self.clause = clause
            self.params = params.map { v in
                switch v {
                case .string(let s): "s" + s
                case .int(let i): "i\(i)"
                case .null: nil
                }
            }
            self.count = count
        }
    }
    struct Continuation { var lastKey: String; var total: Int; var at: Double }
    struct Position: Hashable { var key: Key; var startIndex: Int }

    static let timeout = 120.0
    static let limit = 256
    private let lock = NSLock()
    private var chains: [Position: Continuation] = [:]

    /// The continuation of the chain whose next page starts at `startIndex`, removed (the
    /// page that continues it leaves the next one).
    func take(_ key: Key, startIndex: Int) -> Continuation? {
        let now = currentTime()
        return lock.withLock {
            guard let c = chains.removeValue(forKey: Position(key: key, startIndex: startIndex)), now - c.at < Self.timeout else { return nil }
            return c
        }
    }

    func remember(_ key: Key, next startIndex: Int, lastKey: String, total: Int) {
        let now = currentTime()
        lock.withLock {
            if chains.count >= Self.limit {
                chains = chains.filter { now - $0.value.at < Self.timeout }
                if chains.count >= Self.limit, let oldest = chains.min(by: { $0.value.at < $1.value.at }) { chains[oldest.key] = nil }
            }
            chains[Position(key: key, startIndex: startIndex)] = Continuation(lastKey: lastKey, total: total, at: now)
        }
    }
}
