import Foundation
import Logging
import NIOConcurrencyHelpers
import SCIMKit

/// A SCIM answer, independent of HTTP.
public struct SCIMResult: Sendable {
    public var status: Int
    public var body: JSON?
    public var etag: String?
    public var location: String?

    public init(status: Int, body: JSON?, etag: String? = nil, location: String? = nil) {
        self.status = status
        self.body = body
        self.etag = etag
        self.location = location
    }
}

/// How an answer is shown to the client: where its resources live (the base of
/// `meta.location` and of members' `$ref`) and which attributes it asked for.
public struct Presentation: Sendable {
    public var baseURL: String
    public var projection: Projection
    /// A PATCH that only adds or removes group members is answered with the group (200)
    /// rather than 204 No Content even when no attributes were asked for (SCIM 1.1 clients
    /// expect the group back).
    public var groupAfterMemberChanges: Bool

    public init(baseURL: String, projection: Projection = .default, groupAfterMemberChanges: Bool = false) {
        self.baseURL = baseURL
        self.projection = projection
        self.groupAfterMemberChanges = groupAfterMemberChanges
    }

    /// Whether a PATCH's answer must carry the resource: 204 No Content is the answer to a
    /// group's member changes when the client asked for no attributes (RFC 7644 §3.5.2
    /// allows it; Entra ID and Okta expect it), so that adding one member to a group of
    /// 100,000 does not read and send them all.
    func wantsResource(afterMemberChangesOf kind: Capabilities.ResourceKind) -> Bool {
        kind != .group || groupAfterMemberChanges || projection != .default
    }
}

/// Where a SCIM request becomes target calls: checks what the app's target can do,
/// normalises input, makes the calls, and shapes the output (meta, ETag, projection, the
/// filtering, sorting and paging the target left to the agent).
public final class SCIMService: Sendable {
    public let registry: ConnectorRegistry
    let logger: Logger
    /// Updates of one resource made one at a time in this agent, so that concurrent PATCHes
    /// of one user queue here rather than retry against the target. What keeps them right
    /// across agents is the conditional replace; this only spares the retries.
    let updates = ResourceLocks()
    /// "app/Kind/attribute" of each ignored attribute already logged.
    let ignoredAttributes = NIOLockedValueBox<Set<String>>([])

    /// Where changes are audited (`audit:`), if anywhere.
    public let audit: AuditLog?

    public init(registry: ConnectorRegistry, logger: Logger, audit: AuditLog? = nil) {
        self.registry = registry
        self.logger = logger
        self.audit = audit
    }

    /// Runs a change and, with an audit log, writes its line before the answer goes out:
    /// who (`Caller.current`), what (operation, resource, the attribute names it touched, never
    /// a value), how it ended and how long it took.
    func audited(_ operation: String, _ app: String, _ kind: Kind, id: String?, body: JSON?, attributes: [String],
                 _ change: () async throws(SCIMError) -> SCIMResult) async throws(SCIMError) -> SCIMResult {
        guard let audit else { return try await change() }
        let started = Date()
        let outcome: Result<SCIMResult, SCIMError>
        do { outcome = .success(try await change()) } catch { outcome = .failure(error) }
        var record: JSONObject = [
            "time": .string(DateTime.format(started.timeIntervalSince1970)), "app": .string(app), "operation": .string(operation),
            "resourceType": .string(kind.rawValue),
        ]
        let stored = (try? outcome.get())?.body
        if let id = id ?? stored?["id"]?.stringValue { record["id"] = .string(id) }
        let nameKey = kind == .user ? "userName" : "displayName"
        if let name = stored?[nameKey]?.stringValue ?? body?[nameKey]?.stringValue { record[nameKey] = .string(name) }
        if !attributes.isEmpty { record["attributes"] = .array(attributes.map(JSON.string)) }
        switch outcome {
        case .success(let r): record["status"] = .number(Double(r.status))
        case .failure(let e):
            record["status"] = .number(Double(e.status))
            if let t = e.scimType { record["scimType"] = .string(t.rawValue) }
        }
        record["durationMs"] = .number((Date().timeIntervalSince(started) * 1e5).rounded() / 100)
        if let caller = Caller.current {
            record["requestId"] = .string(caller.requestId)
            var client: JSONObject = ["credential": .string(caller.credential)]
            if let address = caller.remoteAddress { client["remoteAddress"] = .string(address) }
            record["client"] = .object(client)
            if let index = caller.bulkIndex { record["bulkOperation"] = .number(Double(index)) }
        }
        audit.write(.object(record))
        return try outcome.get()
    }

    /// A group PATCH that only adds (or only removes) members is audited as such.
    static func patchOperation(_ kind: Kind, _ body: JSON) -> String {
        guard kind == .group, let ops = body["Operations"]?.arrayValue, !ops.isEmpty else { return "patch" }
        let kinds = Set(ops.map { op -> String in
            let path = op["path"]?.stringValue?.lowercased() ?? ""
            guard path == "members" || path.hasPrefix("members[") else { return "patch" }
            switch op["op"]?.stringValue?.lowercased() {
            case "add": return "addMembers"
            case "remove": return "removeMembers"
            default: return "patch"
            }
        })
        return kinds.count == 1 ? kinds.first! : "patch"
    }

    /// How many times a PATCH is computed afresh when the resource keeps changing under it
    /// (another agent writing it) before the client gets a 409 to send it again.
    static let updateAttempts = 8

    public typealias Kind = Capabilities.ResourceKind

    /// Runs `body` with the app's target and `kind`'s resource type, leased for its duration.
    func withResource<T: Sendable>(_ app: String, _ kind: Kind, _ body: (ResourceRequest) async throws(SCIMError) -> T) async throws(SCIMError) -> T {
        try await registry.withLease(app: app) { lease throws(SCIMError) in try await body(try ResourceRequest(lease, kind)) }
    }

    /// Runs an update of one resource after the updates of it already running in this agent.
    func updating<T: Sendable>(_ app: String, _ kind: Kind, _ id: String, _ body: (ResourceRequest) async throws(SCIMError) -> T) async throws(SCIMError) -> T {
        try await updates.withLock(app + "/" + kind.rawValue + "/" + id) { () async throws(SCIMError) -> T in
            try await withResource(app, kind, body)
        }
    }

    /// Input from a client made ready for the target: normalised, read-only attributes and
    /// what the target cannot store removed, required attributes checked.
    func prepare(_ body: JSON, _ request: ResourceRequest) throws(SCIMError) -> JSON {
        let r = request.resource
        var resource = try ResourceNormalizer.normalize(body, schema: r.schema)
        if !r.holdsAnyAttribute {
            let (kept, unknown) = r.schema.withoutUnknownAttributes(resource)
            try screen(unknown, request)
            resource = kept
        }
        for a in CommonAttributes.all where a.mutability == .readOnly { resource[a.name] = nil }
        for a in r.schema.core.attributes where a.mutability == .readOnly { resource[a.name] = nil }
        if !r.passwordWritable { resource["password"] = nil }
        // The RFC's own requirements (userName, displayName). What a connector marks required
        // on top (a directory's `active`) tells clients it always holds a value; the
        // connector supplies a default when a client leaves it out.
        try ResourceNormalizer.checkRequired(resource, schema: request.kind.coreSchema)
        var schemas = resource["schemas"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if !schemas.contains(where: { $0.caselessEquals(r.schema.core.id) }) { schemas.insert(r.schema.core.id, at: 0) }
        for ext in r.schema.extensions where resource[ext.id] != nil && !schemas.contains(where: { $0.caselessEquals(ext.id) }) {
            schemas.append(ext.id)
        }
        resource["schemas"] = .array(schemas.map(JSON.string))
        return resource
    }

    /// Attributes the target cannot hold, by the app's `unknownAttributes`: a 400 naming them,
    /// or a warning logged once per attribute and app.
    func screen(_ unknown: [String], _ request: ResourceRequest) throws(SCIMError) {
        guard !unknown.isEmpty else { return }
        let lease = request.lease
        if lease.unknownAttributes == .reject {
            throw .invalidValue("app \(lease.app) cannot hold \(unknown.joined(separator: ", ")): its target (\(lease.target.description)) keeps no such \(request.kind.rawValue) attribute. Map it in the connector's settings, or set apps.\(lease.app).unknownAttributes: ignore")
        }
        let prefix = lease.app + "/" + request.kind.rawValue + "/"
        let new = ignoredAttributes.withLockedValue { (seen: inout Set<String>) -> [String] in unknown.filter { seen.insert(prefix + $0).inserted } }
        for name in new {
            logger.warning("an attribute the target cannot hold is ignored (logged once)", metadata: [
                "app": .string(lease.app), "scim.resource": .string(request.kind.rawValue), "scim.attribute": .string(name),
            ])
        }
    }

    /// A PATCH for a target that applies it itself, without what the target cannot hold.
    func screen(_ patch: PatchRequest, _ request: ResourceRequest) throws(SCIMError) -> PatchRequest {
        let schema = request.schema
        guard !request.resource.holdsAnyAttribute else { return patch }
        var unknown: [String] = []
        var kept: [PatchOperation] = []
        for var op in patch.operations {
            if let path = op.path {
                if schema.holds(path) { kept.append(op) } else { unknown.append(path.text) }
            } else if let value = op.value {
                let (v, names) = schema.withoutUnknownAttributes(value)
                unknown += names
                op.value = v
                if v.objectValue?.isEmpty != true { kept.append(op) }
            }
        }
        try screen(unknown, request)
        return PatchRequest(operations: kept)
    }

    // MARK: - Operations

    public func create(app: String, kind: Kind, body: JSON, presentation: Presentation) async throws(SCIMError) -> SCIMResult {
        try await audited("create", app, kind, id: nil, body: body, attributes: AuditLog.attributeNames(of: body)) { () async throws(SCIMError) in
            try await withResource(app, kind) { request throws(SCIMError) in
                try request.require(.create, "create \(kind.rawValue)s")
                let stored = try await request.target.create(kind, try prepare(body, request))
                let out = request.present(stored, presentation)
                return SCIMResult(status: 201, body: out.resource, etag: out.etag, location: out.resource["meta"]?["location"]?.stringValue)
            }
        }
    }

    public func get(app: String, kind: Kind, id: String, presentation: Presentation) async throws(SCIMError) -> SCIMResult {
        try await withResource(app, kind) { request throws(SCIMError) in
            if kind == .group && presentation.projection.leavesOut("members", of: CoreSchemas.groupID),
                let group = try await request.fetchWithoutMembers(id) {
                let out = request.present(group, presentation, membersRead: false)
                return SCIMResult(status: 200, body: out.resource, etag: out.etag)
            }
            let out = request.present(try await request.fetch(id), presentation)
            return SCIMResult(status: 200, body: out.resource, etag: out.etag)
        }
    }

    public func replace(app: String, kind: Kind, id: String, body: JSON, ifMatch: String?, presentation: Presentation) async throws(SCIMError) -> SCIMResult {
        try await audited("replace", app, kind, id: id, body: body, attributes: AuditLog.attributeNames(of: body)) { () async throws(SCIMError) in
            try await updating(app, kind, id) { request throws(SCIMError) in
                try request.require(.replace, "replace \(kind.rawValue)s")
                if let given = body["id"]?.stringValue, given != id {
                    throw .mutability("id \(given) in the body does not match the URL's \(id)")
                }
                let prepared = try prepare(body, request)
                var expected: JSON?
                if ifMatch != nil {
                    let current = try await request.checkedFetch(id, ifMatch: ifMatch)
                    if request.replacesConditionally { expected = current }
                }
                let stored = try await guarded(kind == .user && DeletionGuard.deactivates(put: body) ? .deactivation : nil, request) { () async throws(SCIMError) in
                    try await request.target.replace(kind, id, prepared, ifUnchanged: expected)
                }
                let out = request.present(stored, presentation)
                return SCIMResult(status: 200, body: out.resource, etag: out.etag)
            }
        }
    }

    public func delete(app: String, kind: Kind, id: String, ifMatch: String?) async throws(SCIMError) -> SCIMResult {
        try await audited("delete", app, kind, id: id, body: nil, attributes: []) { () async throws(SCIMError) in
            try await updating(app, kind, id) { request throws(SCIMError) in
                try request.require(.delete, "delete \(kind.rawValue)s")
                if ifMatch != nil { _ = try await request.checkedFetch(id, ifMatch: ifMatch) }
                try await guarded(.delete, request) { () async throws(SCIMError) in try await request.target.delete(kind, id) }
                return SCIMResult(status: 204, body: nil)
            }
        }
    }

    /// Runs `change` if the app's deletion guard lets a change of that kind through (nil: not
    /// one it counts); else throws its 429.
    func guarded<T: Sendable>(_ change: DeletionGuard.Change?, _ request: ResourceRequest, _ body: () async throws(SCIMError) -> T) async throws(SCIMError) -> T {
        guard let change else { return try await body() }
        let limits = request.lease.guardLimits
        let ticket = try registry.deletionGuard.admit(change, app: request.lease.app, limit: change == .delete ? limits.maxDeletesPerHour : limits.maxDeactivationsPerHour)
        do {
            let result = try await body()
            ticket.done(succeeded: true)
            return result
        } catch {
            ticket.done(succeeded: false)
            throw error
        }
    }

    public func patch(app: String, kind: Kind, id: String, body: JSON, ifMatch: String?, presentation: Presentation) async throws(SCIMError) -> SCIMResult {
        try await audited(Self.patchOperation(kind, body), app, kind, id: id, body: nil, attributes: AuditLog.attributeNames(ofPatch: body)) { () async throws(SCIMError) in
            let patch = try PatchRequest(json: body)
            return try await updating(app, kind, id) { request throws(SCIMError) in
                guard request.resource.canPatch else {
                    throw .notImplemented("app \(app) cannot update \(kind.rawValue)s: its connector implements neither patch nor get and replace")
                }
                // One form for every target: what a strict remote server accepts.
                let stored = try await guarded(kind == .user && DeletionGuard.deactivates(patch: body) ? .deactivation : nil, request) { () async throws(SCIMError) in
                    try await apply(patch.standardized(for: request.schema), to: id, request, ifMatch: ifMatch,
                                    resultAfterMemberChanges: presentation.wantsResource(afterMemberChangesOf: kind))
                }
                guard let stored else { return SCIMResult(status: 204, body: nil) }
                let out = request.present(stored, presentation)
                return SCIMResult(status: 200, body: out.resource, etag: out.etag)
            }
        }
    }

    /// PATCH by the connector's own `patch` when it has one; group member adds and removes as
    /// deltas when it supports them; everything else as get → apply → replace, the replace
    /// conditional on the version read where the target can do that, and computed again from
    /// the new version when another writer got there first. The resource as stored after;
    /// nil when the PATCH only changed members and `resultAfterMemberChanges` is false (the
    /// group is then not read at all, unless If-Match asks for its version).
    func apply(_ patch: PatchRequest, to id: String, _ request: ResourceRequest, ifMatch: String?,
               resultAfterMemberChanges: Bool = true) async throws(SCIMError) -> JSON? {
        let (r, kind, target) = (request.resource, request.kind, request.target)
        var operations = patch.operations
        var ifMatch = ifMatch
        if kind == .group && request.lease.capabilities.groupMemberDeltas {
            let (deltas, rest) = MemberDeltas.split(operations)
            if !deltas.isEmpty {
                if ifMatch != nil || !rest.isEmpty {
                    // The group exists (at the version asked for) before its members change.
                    // Without If-Match the connector's member change says itself when the
                    // group does not exist (404).
                    _ = try await request.checkedFetch(id, ifMatch: ifMatch)
                }
                for d in deltas { try await target.changeMembers(id, d.members, add: d.add) }
                operations = rest
                if operations.isEmpty {
                    guard resultAfterMemberChanges else { return nil }  // not JSON.null: nil, no result
                    return try await request.fetch(id)
                }
                ifMatch = nil  // checked; the group has changed since, by this request
            }
        }
        let remaining = PatchRequest(operations: operations)
        if r.operations.contains(.patch) {
            if ifMatch != nil { _ = try await request.checkedFetch(id, ifMatch: ifMatch) }
            let screened = try screen(remaining, request)
            if screened.operations.isEmpty { return try await request.fetch(id) }
            return try await target.patch(kind, id, screened)
        }
        let conditional = request.replacesConditionally
        for attempt in 1...Self.updateAttempts {
            let before = try await request.checkedFetch(id, ifMatch: ifMatch)
            var after = try PatchApplier(schema: r.schema).apply(remaining, to: before)
            if !r.passwordWritable { after["password"] = nil }
            if after == before { return before }
            let prepared = try prepare(after, request)
            do {
                return try await target.replace(kind, id, prepared, ifUnchanged: conditional ? before : nil)
            } catch where error.status == 412 && conditional {
                guard attempt < Self.updateAttempts else { break }
                // Another writer changed it between the read and the write: a short, growing,
                // jittered pause, then the PATCH again on what it wrote.
                try? await Task.sleep(for: .microseconds(Int.random(in: 0...(1000 << min(attempt, 5)))))
            }
        }
        throw SCIMError(status: 409, detail: "\(kind.rawValue) \(id) was changed by other writers \(Self.updateAttempts) times while this PATCH was applied; send it again")
    }

    public func search(app: String, kind: Kind, query: Query, presentation: Presentation) async throws(SCIMError) -> SCIMResult {
        try await withResource(app, kind) { request throws(SCIMError) in
            try request.require(.search, "list \(kind.rawValue)s")
            let schema = request.schema
            var q = query
            q.filter = q.filter?.canonicalized(by: schema)
            try q.filter?.checkDateTimes(in: schema)
            if let s = q.sortBy { q.sortBy = schema.canonical(s) }
            let limit = request.lease.capabilities.filterMaxResults
            // RFC 9865 cursor paging: the cursor says where the page starts (PageCursor).
            let digest = PageCursor.digest(resourceType: kind.rawValue, q)
            let now = Int(Date().timeIntervalSince1970)
            if let cursor = q.cursor {
                if let count = q.count, count > limit {
                    throw SCIMError(status: 400, scimType: .invalidCount, detail: "count must be from 0 to \(limit) (pagination.maxPageSize)")
                }
                let decoded = cursor.isEmpty ? nil : try PageCursor.decode(cursor, digest: digest, now: now)
                q.startIndex = decoded?.startIndex ?? 1
                // A target that pages by its own cursor continues from it (a remote's, passed through).
                q.targetCursor = cursor.isEmpty ? "" : decoded?.target
            }
            q.count = min(q.count ?? limit, limit)
            q.withoutMembers = kind == .group && presentation.projection.leavesOut("members", of: CoreSchemas.groupID)
                && !(q.filter?.paths.contains { $0.name.caselessEquals("members") } ?? false)
            let reply = try await request.target.search(kind, q)
            var resources = reply.resources
            var total = reply.totalResults ?? resources.count
            if !reply.paged {
                if !reply.filtered, let filter = q.filter {
                    let evaluator = FilterEvaluator(schema: schema)
                    resources = resources.filter { evaluator.matches(filter, $0) }
                }
                if !reply.sorted, let sortBy = q.sortBy {
                    ResultShaping.sort(&resources, by: sortBy, order: q.sortOrder, schema: schema)
                }
                total = resources.count
                resources = Array(ResultShaping.page(resources, startIndex: q.startIndex, count: q.count))
            }
            let shown = resources.map { request.present($0, presentation, membersRead: !q.withoutMembers).resource }
            var list = ListResponse(totalResults: total, startIndex: q.startIndex, resources: shown)
            if q.cursor != nil {
                let next = q.startIndex + shown.count
                let count = q.count ?? limit
                let more = reply.nextCursor.map { !$0.isEmpty } ?? (next <= total && !shown.isEmpty)
                list.cursors = (
                    next: more ? PageCursor(startIndex: next, query: digest, issued: now, target: reply.nextCursor).encoded : nil,
                    previous: q.startIndex > 1 ? PageCursor(startIndex: max(1, q.startIndex - max(count, 1)), query: digest, issued: now).encoded : nil)
            }
            return SCIMResult(status: 200, body: list.json)
        }
    }

    public func test(app: String) async throws(SCIMError) -> String {
        // A remote's test reads its discovery documents itself.
        try await registry.withLease(app: app, awaitingDiscovery: false) { lease throws(SCIMError) in try await lease.target.test() }
    }

    // MARK: - Discovery

    /// What the app's target can do, as its discovery documents show it.
    public func capabilities(app: String) async throws(SCIMError) -> Capabilities {
        try await registry.withLease(app: app) { lease throws(SCIMError) in lease.capabilities }
    }

    public func discovery(app: String, baseURL: String) async throws(SCIMError) -> Discovery {
        Discovery(capabilities: try await capabilities(app: app), baseURL: baseURL)
    }
}

/// One request's view of the resource type it is about: the lease on the app's target (held
/// while the request runs), the kind, and what the target can do with that kind.
struct ResourceRequest: Sendable {
    typealias Kind = Capabilities.ResourceKind
    let lease: Lease
    let kind: Kind
    let resource: Capabilities.Resource

    init(_ lease: Lease, _ kind: Kind) throws(SCIMError) {
        guard let r = lease.capabilities.resource(kind) else {
            throw .notImplemented("app \(lease.app) has no \(kind.rawValue) resource type (its connector does not implement it)")
        }
        self.lease = lease
        self.kind = kind
        self.resource = r
    }

    var target: any Target { lease.target }
    var schema: ResourceSchema { resource.schema }

    func require(_ op: Capabilities.Operations, _ what: String) throws(SCIMError) {
        guard resource.operations.contains(op) else {
            throw .notImplemented("app \(lease.app) cannot \(what): its target (\(lease.target.description)) does not implement it")
        }
    }

    /// Whether a replace can be made conditional on the version read (`get` and replace_if,
    /// or a remote's If-Match).
    var replacesConditionally: Bool { resource.operations.isSuperset(of: [.get, .conditionalReplace]) }

    /// Reads one resource: by `get` when the target has it, else by an `id eq` search.
    func fetch(_ id: String) async throws(SCIMError) -> JSON {
        if resource.operations.contains(.get) { return try await target.get(kind, id) }
        try require(.search, "read \(kind.rawValue)s")
        return try await search(id: id, withoutMembers: false)
    }

    /// The resource found by `id eq`, or 404.
    func search(id: String, withoutMembers: Bool) async throws(SCIMError) -> JSON {
        var query = Query(filter: .compare(AttributePath(name: "id"), .eq, .string(id)))
        query.withoutMembers = withoutMembers
        let reply = try await target.search(kind, query)
        guard let found = reply.resources.first(where: { $0["id"]?.stringValue == id }) else { throw .notFound("\(kind.rawValue) \(id) not found") }
        return found
    }

    /// A group without its members, for a client that leaves them out: searched for by id
    /// with `withoutMembers`, so that a group of 100,000 members costs what an empty one
    /// does. nil where the target cannot search or refuses that search (the caller then reads
    /// the group whole).
    func fetchWithoutMembers(_ id: String) async throws(SCIMError) -> JSON? {
        guard resource.operations.contains(.search) else { return nil }
        do {
            return try await search(id: id, withoutMembers: true)
        } catch where error.status == 400 || error.status == 501 {
            return nil
        }
    }

    /// Reads the resource, checking it against If-Match when the client sent one.
    func checkedFetch(_ id: String, ifMatch: String?) async throws(SCIMError) -> JSON {
        let current = try await fetch(id)
        guard let ifMatch else { return current }
        let etag = ResourceVersion.etag(of: current)
        guard ResourceVersion.ifMatch(ifMatch, current: etag) else {
            throw SCIMError(status: 412, detail: "\(kind.rawValue) \(id) has changed: its version is \(etag), not \(ifMatch)")
        }
        return current
    }

    /// A stored resource as the client sees it: schemas listed, meta filled (resourceType,
    /// location, and the version: the ETag of what is stored, whatever URL the client used),
    /// members' `$ref`, the password never, and the projection applied. `membersRead` false:
    /// a group read without its members, whose version is then known only if the connector
    /// keeps one (`ResourceVersion.etag(ofReadWithoutMembers:)`); without, it has no
    /// `meta.version` and no ETag.
    func present(_ stored: JSON, _ presentation: Presentation, membersRead: Bool = true) -> (resource: JSON, etag: String?) {
        let etag = membersRead ? ResourceVersion.etag(of: stored) : ResourceVersion.etag(ofReadWithoutMembers: stored)
        guard case .object(var o) = stored else { return (stored, etag) }
        let baseURL = presentation.baseURL
        o["password"] = nil
        o.moveToFront(["schemas", "id", "externalId"])
        // Every extension the resource holds is listed (RFC 7643 §3), whatever the connector
        // stored: a database row keeps an extension's values but not always its URN.
        var schemas = o["schemas"]?.arrayValue ?? [.string(schema.core.id)]
        let count = schemas.count
        for ext in schema.extensions where o[ext.id] != nil && !schemas.contains(where: { $0.stringValue?.caselessEquals(ext.id) == true }) {
            schemas.append(.string(ext.id))
        }
        if count != schemas.count || o["schemas"] == nil { o["schemas"] = .array(schemas) }
        var meta = o["meta"]?.objectValue ?? JSONObject()
        meta["resourceType"] = .string(kind.rawValue)
        if let id = o["id"]?.stringValue { meta["location"] = .string(baseURL + kind.endpoint + "/" + id) }
        meta["version"] = etag.map(JSON.string)
        o["meta"] = .object(meta)
        for key in ["members", "groups"] { if let list = o[key]?.arrayValue { o[key] = .array(list.map { Self.referenced($0, baseURL) }) } }
        return (presentation.projection.apply(to: .object(o), schema: schema), etag)
    }

    /// A member or group reference with its `$ref`, when its type says where it lives.
    static func referenced(_ member: JSON, _ baseURL: String) -> JSON {
        guard member["$ref"] == nil, let id = member["value"]?.stringValue, let type = member["type"]?.stringValue,
            let kind = Kind(rawValue: type)
        else { return member }
        var m = member
        m["$ref"] = .string(baseURL + kind.endpoint + "/" + id)
        return m
    }
}

/// Group PATCH operations that are plain member additions or removals.
enum MemberDeltas {
    struct Delta { var add: Bool; var members: [JSON] }

    static func split(_ ops: [PatchOperation]) -> ([Delta], [PatchOperation]) {
        var deltas: [Delta] = []
        var rest: [PatchOperation] = []
        for op in ops {
            if let d = delta(op) { deltas.append(d) } else { rest.append(op) }
        }
        // Order matters only between deltas and other operations on members; keep it simple:
        // if any other operation touches members, apply everything the general way.
        if rest.contains(where: { touchesMembers($0) }) { return ([], ops) }
        return (deltas, rest)
    }

    static func touchesMembers(_ op: PatchOperation) -> Bool {
        if let p = op.path { return p.attribute.name.caselessEquals("members") }
        return op.value?["members"] != nil
    }

    static func delta(_ op: PatchOperation) -> Delta? {
        func ids(_ v: JSON?) -> [JSON]? {
            guard let v else { return nil }
            let list = v.arrayValue ?? [v]
            let members = list.compactMap { m -> JSON? in
                guard let id = m["value"]?.stringValue else { return nil }
                return ResourceNormalizer.coerce(m, CoreSchemas.group.attribute("members"), asElement: true).objectValue.map(JSON.object) ?? ["value": .string(id)]
            }
            return members.count == list.count && !members.isEmpty ? members : nil
        }
        switch (op.op, op.path) {
        case (.add, let p?) where p.attribute.name.caselessEquals("members") && p.filter == nil && p.subAttribute == nil && p.attribute.subAttribute == nil:
            return ids(op.value).map { Delta(add: true, members: $0) }
        case (.add, nil):
            guard let o = op.value?.objectValue, o.count == 1, let m = o["members"] else { return nil }
            return ids(m).map { Delta(add: true, members: $0) }
        case (.remove, let p?) where p.attribute.name.caselessEquals("members") && p.subAttribute == nil && p.attribute.subAttribute == nil:
            if let f = p.filter {
                // members[value eq "id"], or several joined by or
                guard let list = valueIDs(f) else { return nil }
                return Delta(add: false, members: list.map { ["value": .string($0)] })
            }
            return ids(op.value).map { Delta(add: false, members: $0) }  // Entra ID sends the members to remove as the value
        default:
            return nil
        }
    }

    static func valueIDs(_ f: Filter) -> [String]? {
        switch f {
        case .compare(let p, .eq, .string(let v)) where p.name.caselessEquals("value") && p.subAttribute == nil: return [v]
        case .or(let l, let r):
            guard let a = valueIDs(l), let b = valueIDs(r) else { return nil }
            return a + b
        default: return nil
        }
    }
}
