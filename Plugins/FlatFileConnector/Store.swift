#if canImport(Glibc)
import Glibc
#endif
import ConnectorSDK

/// The users and groups of one directory, in memory, kept in step with the files.
struct Store {
    var users: Table
    var groups: Table
    let host: ConnectorHost
    var lastWrite: Double = 0

    init(directory: String, host: ConnectorHost) throws(SCIMError) {
        self.host = host
        users = Table(kind: .user, files: try TableFiles(directory: directory, name: "users", columns: Rows.userColumns))
        groups = Table(kind: .group, files: try TableFiles(directory: directory, name: "groups", columns: Rows.groupColumns))
        try users.files.withFileLock { () throws(SCIMError) in
            try users.reload()
            try groups.reload()
        }
    }

    /// Picks up what changed on disk: an admin's edit of a CSV, or journal lines another
    /// instance (a previous plugin generation still draining) appended. Call it holding the
    /// file lock (`TableFiles.withFileLock`).
    mutating func refresh() throws(SCIMError) {
        for kind in [Capabilities.ResourceKind.user, .group] {
            switch (kind == .user ? users : groups).files.detectChange() {
            case .none: continue
            case .csv:
                if kind == .user { try users.reload() } else { try groups.reload() }
                host.log(.info, "reloaded \((kind == .user ? users : groups).files.csvPath) after a change on disk")
            case .journalTail:
                if kind == .user { try users.replayTail() } else { try groups.replayTail() }
            }
        }
    }

    mutating func compact() throws(SCIMError) {
        try users.files.withFileLock { () throws(SCIMError) in
            try refresh()
            if users.files.journalEntries > 0 { try users.files.compact(rows: users.rows()) }
            if groups.files.journalEntries > 0 { try groups.files.compact(rows: groups.rows()) }
        }
    }

    func idleSeconds() -> Double { now() - lastWrite }

    mutating func create(_ kind: Capabilities.ResourceKind, _ resource: JSON) throws(SCIMError) -> JSON {
        defer { lastWrite = now() }
        if kind == .user { return try users.create(resource) }
        try checkMembers(resource)
        return try groups.create(resource)
    }

    mutating func replace(_ kind: Capabilities.ResourceKind, _ id: String, _ resource: JSON) throws(SCIMError) -> JSON {
        defer { lastWrite = now() }
        if kind == .user { return try users.replace(id, resource) }
        try checkMembers(resource)
        return try groups.replace(id, resource)
    }

    func checkMembers(_ r: JSON) throws(SCIMError) {
        for m in r["members"]?.arrayValue ?? [] {
            guard let v = m["value"]?.stringValue, users.records[v] != nil || groups.records[v] != nil else {
                throw .invalidValue("member \(m["value"]?.serialized() ?? "null") is neither a user nor a group")
            }
        }
    }

    /// Members with their type, which the CSV does not store but the ids tell.
    func annotated(_ group: JSON) -> JSON {
        guard let members = group["members"]?.arrayValue else { return group }
        var g = group
        g["members"] = .array(members.map { m in
            guard let id = m["value"]?.stringValue else { return m }
            var out = m
            out["type"] = users.records[id] != nil ? "User" : groups.records[id] != nil ? "Group" : nil
            return out
        })
        return g
    }

    mutating func deleteUser(_ id: String) throws(SCIMError) {
        try users.delete(id)
        // A deleted user leaves every group; the journal's delete entry implies the same on replay.
        for gid in groups.order where groups.records[gid]?["members"]?.arrayValue?.contains(where: { $0["value"]?.stringValue == id }) == true {
            groups.removeMembers(gid, [id])
        }
        lastWrite = now()
    }

    mutating func changeMembers(_ groupID: String, add: [String], remove: [String]) throws(SCIMError) {
        guard groups.records[groupID] != nil else { throw .notFound("group \(groupID) not found") }
        for id in add where users.records[id] == nil && groups.records[id] == nil {
            throw .invalidValue("member \(id) is neither a user nor a group")
        }
        if !add.isEmpty {
            try groups.files.append(["op": "add", "id": .string(groupID), "members": .array(add.map(JSON.string))])
            groups.addMembers(groupID, add)
        }
        if !remove.isEmpty {
            try groups.files.append(["op": "rm", "id": .string(groupID), "members": .array(remove.map(JSON.string))])
            groups.removeMembers(groupID, remove)
        }
        lastWrite = now()
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}


/// One resource type's records, its index on userName/displayName, and its files.
struct Table {
    let kind: Capabilities.ResourceKind
    let files: TableFiles
    var records: [String: JSON] = [:]
    var order: [String] = []
    /// Lowercased userName (users) or displayName (groups) → ids.
    var byKey: [String: [String]] = [:]

    init(kind: Capabilities.ResourceKind, files: TableFiles) {
        self.kind = kind
        self.files = files
    }

    var count: Int { records.count }
    var keyAttribute: String { kind.keyAttribute }
    var schemaID: String { kind.schemaID }

    func key(of r: JSON) -> String { (r[keyAttribute]?.stringValue ?? "").lowercased() }

    // MARK: Loading

    mutating func reload() throws(SCIMError) {
        let (rows, columns) = try files.readCSV()
        var fresh = Table(kind: kind, files: files)
        for (i, row) in rows.enumerated() {
            let r: JSON
            do { r = kind == .user ? try Rows.user(from: row, columns: columns) : try Rows.group(from: row, columns: columns) } catch {
                throw SCIMError(status: 503, detail: "\(files.csvPath) row \(i + 2): \(error.detail)")
            }
            guard let id = r["id"]?.stringValue, !id.isEmpty else { throw SCIMError(status: 503, detail: "\(files.csvPath) row \(i + 2) has no id") }
            fresh.put(r)
        }
        self = fresh
        try replayTail()
    }

    mutating func replayTail() throws(SCIMError) {
        for entry in try files.readJournalTail() { apply(entry) }
    }

    /// Entries are idempotent, so replaying one twice (a crash between compaction and
    /// emptying the journal) gives the same state.
    mutating func apply(_ entry: JSON) {
        switch entry["op"]?.stringValue {
        case "put": if let r = entry["resource"] { put(r) }
        case "del": if let id = entry["id"]?.stringValue { remove(id) }
        case "add": if let id = entry["id"]?.stringValue { addMembers(id, entry["members"]?.arrayValue?.compactMap(\.stringValue) ?? []) }
        case "rm": if let id = entry["id"]?.stringValue { removeMembers(id, entry["members"]?.arrayValue?.compactMap(\.stringValue) ?? []) }
        default: break
        }
    }

    func rows() -> [[String]] {
        order.compactMap { records[$0] }.map { kind == .user ? Rows.userRow($0) : Rows.groupRow($0) }
    }

    // MARK: In-memory changes

    mutating func put(_ r: JSON) {
        guard let id = r["id"]?.stringValue else { return }
        if let old = records[id] {
            byKey[key(of: old)]?.removeAll { $0 == id }
        } else {
            order.append(id)
        }
        records[id] = r
        byKey[key(of: r), default: []].append(id)
    }

    mutating func remove(_ id: String) {
        guard let old = records.removeValue(forKey: id) else { return }
        byKey[key(of: old)]?.removeAll { $0 == id }
        if let i = order.firstIndex(of: id) { order.remove(at: i) }
    }

    mutating func addMembers(_ id: String, _ members: [String]) {
        guard var g = records[id] else { return }
        var list = g["members"]?.arrayValue ?? []
        var present = Set(list.compactMap { $0["value"]?.stringValue })
        for m in members where !present.contains(m) {
            list.append(["value": .string(m)])
            present.insert(m)
        }
        g["members"] = .array(list)
        touch(&g)
        records[id] = g
    }

    mutating func removeMembers(_ id: String, _ members: [String]) {
        guard var g = records[id] else { return }
        let gone = Set(members)
        g["members"] = .array((g["members"]?.arrayValue ?? []).filter { !gone.contains($0["value"]?.stringValue ?? "") })
        touch(&g)
        records[id] = g
    }

    func touch(_ r: inout JSON) {
        var meta = r["meta"]?.objectValue ?? JSONObject()
        meta["lastModified"] = .string(DateTime.format(now()))
        r["meta"] = .object(meta)
    }

    // MARK: Operations

    func stored(_ resource: JSON, id: String, created: String?) -> JSON {
        var r = resource
        r["id"] = .string(id)
        r["password"] = nil  // never kept in a plain file
        if r["schemas"] == nil { r["schemas"] = [.string(schemaID)] }
        if kind == .group {
            r["members"] = .array(r.memberIDs.map { ["value": .string($0)] })
        }
        let stamp = DateTime.format(now())
        r["meta"] = ["created": .string(created ?? stamp), "lastModified": .string(stamp)]
        return r
    }

    func checkUnique(_ r: JSON, except id: String?) throws(SCIMError) {
        guard kind == .user else { return }
        let k = key(of: r)
        if let ids = byKey[k], ids.contains(where: { $0 != id }) {
            throw .uniqueness("userName \"\(r["userName"]?.stringValue ?? "")\" is already taken")
        }
    }

    mutating func create(_ resource: JSON) throws(SCIMError) -> JSON {
        try checkUnique(resource, except: nil)
        let r = stored(resource, id: ResourceID.new(), created: nil)
        try files.append(["op": "put", "resource": r])
        put(r)
        return r
    }

    func get(_ id: String) throws(SCIMError) -> JSON {
        guard let r = records[id] else { throw .notFound("\(kind.rawValue) \(id) not found") }
        return r
    }

    mutating func replace(_ id: String, _ resource: JSON) throws(SCIMError) -> JSON {
        guard let old = records[id] else { throw .notFound("\(kind.rawValue) \(id) not found") }
        try checkUnique(resource, except: id)
        let r = stored(resource, id: id, created: old["meta"]?["created"]?.stringValue)
        try files.append(["op": "put", "resource": r])
        put(r)
        return r
    }

    mutating func delete(_ id: String) throws(SCIMError) {
        guard records[id] != nil else { throw .notFound("\(kind.rawValue) \(id) not found") }
        try files.append(["op": "del", "id": .string(id)])
        remove(id)
    }

    /// Answers the whole query: `userName eq` and `id eq` from the indexes, anything else by
    /// evaluating the filter here; sorting and paging too.
    func search(_ query: Query, schema: ResourceSchema) -> SearchResult {
        if query.filter == nil, query.sortBy == nil {
            // An import's page: only the page's records are read, wherever it starts.
            let start = min(query.startIndex - 1, order.count)
            let end = query.count.map { min(order.count, start + $0) } ?? order.count
            return SearchResult(resources: order[start..<end].compactMap { records[$0] }, totalResults: order.count, filtered: true, sorted: true, paged: true)
        }
        var candidates: [JSON]
        switch query.filter {
        case .compare(let p, .eq, .string(let v))? where p.schema == nil && p.subAttribute == nil && p.name == keyAttribute:
            candidates = (byKey[v.lowercased()] ?? []).compactMap { records[$0] }
        case .compare(let p, .eq, .string(let v))? where p.schema == nil && p.subAttribute == nil && p.name == "id":
            candidates = records[v].map { [$0] } ?? []
        case let filter?:
            let evaluator = FilterEvaluator(schema: schema)
            candidates = order.compactMap { records[$0] }.filter { evaluator.matches(filter, $0) }
        case nil:
            candidates = order.compactMap { records[$0] }
        }
        if let sortBy = query.sortBy {
            ResultShaping.sort(&candidates, by: sortBy, order: query.sortOrder, schema: schema)
        }
        let page = ResultShaping.page(candidates, startIndex: query.startIndex, count: query.count)
        return SearchResult(resources: Array(page), totalResults: candidates.count, filtered: true, sorted: true, paged: true)
    }
}
