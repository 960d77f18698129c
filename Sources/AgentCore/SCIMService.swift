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

/// Where a SCIM request becomes connector calls: checks what the app's target can do,
/// normalises input, runs the calls on the connector thread pool, and shapes the output
/// (meta, ETag, projection, filtering/sorting/paging the connector left to the agent).
public final class SCIMService: Sendable {
    public let registry: ConnectorRegistry
    let calls: BlockingCallPool
    let logger: Logger
    /// Updates of one resource made one at a time in this agent, so that concurrent PATCHes
    /// of one user queue here rather than retry against the target. What keeps them right
    /// across agents is the conditional replace; this only spares the retries.
    let updates = ResourceLocks()
    /// "app/Kind/attribute" of each ignored attribute already logged.
    let ignoredAttributes = NIOLockedValueBox<Set<String>>([])

    public init(registry: ConnectorRegistry, calls: BlockingCallPool, logger: Logger) {
        self.registry = registry
        self.calls = calls
        self.logger = logger
    }

    /// How many times a PATCH is computed afresh when the resource keeps changing under it
    /// (another agent writing it) before the client gets a 409 to send it again.
    static let updateAttempts = 8

    public typealias Kind = Capabilities.ResourceKind

    /// Runs blocking connector work on the call pool, holding a lease for its duration.
    func withTarget<T: Sendable>(_ app: String, _ body: @escaping @Sendable (Lease) throws(SCIMError) -> T) async throws(SCIMError) -> T {
        let lease = try registry.lease(app: app)
        defer { lease.release() }
        return try await onPool(app) { () throws(SCIMError) in try body(lease) }
    }

    func onPool<T: Sendable>(_ app: String, _ body: @escaping @Sendable () throws(SCIMError) -> T) async throws(SCIMError) -> T {
        do {
            return try await calls.run(app: app) {
                do { return try body() } catch { throw error }
            }
        } catch let error as SCIMError {
            throw error
        } catch {
            throw SCIMError(status: 503, detail: "the agent is shutting down")
        }
    }

    static func resource(_ lease: Lease, _ kind: Kind) throws(SCIMError) -> Capabilities.Resource {
        guard let r = lease.capabilities.resource(kind) else {
            throw .notImplemented("app \(lease.app) has no \(kind.rawValue) resource type (its connector does not implement it)")
        }
        return r
    }

    static func require(_ r: Capabilities.Resource, _ op: Capabilities.Operations, _ what: String, _ lease: Lease) throws(SCIMError) {
        guard r.operations.contains(op) else {
            throw .notImplemented("app \(lease.app) cannot \(what): its target (\(lease.target.description)) does not implement it")
        }
    }

    // MARK: - Presenting

    /// Fills meta (resourceType, location, version) and schemas, and applies the projection.
    static func present(_ resource: JSON, _ kind: Kind, _ schema: ResourceSchema, baseURL: String, projection: Projection = .default) -> (JSON, String) {
        guard case .object(var o) = resource else { return (resource, "") }
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
        meta["version"] = nil
        o["meta"] = .object(meta)
        for key in ["members", "groups"] { if let list = o[key]?.arrayValue { o[key] = .array(list.map { referenced($0, baseURL) }) } }
        let etag = ResourceVersion.etag(of: .object(o))
        meta["version"] = .string(etag)
        o["meta"] = .object(meta)
        return (projection.apply(to: .object(o), schema: schema), etag)
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

    /// Input from a client made ready for a connector: normalised, read-only attributes and
    /// what the target cannot store removed, required attributes checked.
    func prepare(_ body: JSON, _ r: Capabilities.Resource, _ kind: Kind, _ lease: Lease) throws(SCIMError) -> JSON {
        var resource = try ResourceNormalizer.normalize(body, schema: r.schema)
        if !r.holdsAnyAttribute {
            let (kept, unknown) = r.schema.withoutUnknownAttributes(resource)
            try screen(unknown, kind, lease)
            resource = kept
        }
        for a in CommonAttributes.all where a.mutability == .readOnly { resource[a.name] = nil }
        for a in r.schema.core.attributes where a.mutability == .readOnly { resource[a.name] = nil }
        if !r.passwordWritable { resource["password"] = nil }
        // The RFC's own requirements (userName, displayName). What a connector marks required
        // on top (a directory's `active`) tells clients it always holds a value; the
        // connector supplies a default when a client leaves it out.
        try ResourceNormalizer.checkRequired(resource, schema: kind == .user ? CoreSchemas.userResource : CoreSchemas.groupResource)
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
    func screen(_ unknown: [String], _ kind: Kind, _ lease: Lease) throws(SCIMError) {
        guard !unknown.isEmpty else { return }
        if lease.unknownAttributes == .reject {
            throw .invalidValue("app \(lease.app) cannot hold \(unknown.joined(separator: ", ")): its target (\(lease.target.description)) keeps no such \(kind.rawValue) attribute. Map it in the connector's settings, or set apps.\(lease.app).unknownAttributes: ignore")
        }
        let prefix = lease.app + "/" + kind.rawValue + "/"
        let new = ignoredAttributes.withLockedValue { (seen: inout Set<String>) -> [String] in unknown.filter { seen.insert(prefix + $0).inserted } }
        for name in new {
            logger.warning("an attribute the target cannot hold is ignored (logged once)", metadata: [
                "app": .string(lease.app), "scim.resource": .string(kind.rawValue), "scim.attribute": .string(name),
            ])
        }
    }

    /// A PATCH for a target that applies it itself, without what the target cannot hold.
    func screen(_ request: PatchRequest, _ r: Capabilities.Resource, _ kind: Kind, _ lease: Lease) throws(SCIMError) -> PatchRequest {
        guard !r.holdsAnyAttribute else { return request }
        var unknown: [String] = []
        var kept: [PatchOperation] = []
        for var op in request.operations {
            if let path = op.path {
                if r.schema.holds(path) { kept.append(op) } else { unknown.append(path.text) }
            } else if let value = op.value {
                let (v, names) = r.schema.withoutUnknownAttributes(value)
                unknown += names
                op.value = v
                if v.objectValue?.isEmpty != true { kept.append(op) }
            }
        }
        try screen(unknown, kind, lease)
        return PatchRequest(operations: kept)
    }

    // MARK: - Operations

    public func create(app: String, kind: Kind, body: JSON, baseURL: String, projection: Projection = .default) async throws(SCIMError) -> SCIMResult {
        let lease = try registry.lease(app: app)
        defer { lease.release() }
        let r = try Self.resource(lease, kind)
        try Self.require(r, .create, "create \(kind.rawValue)s", lease)
        let resource = try prepare(body, r, kind, lease)
        let stored: JSON
        if let instance = lease.target as? ConnectorInstance, let batches = instance.batches(kind) {
            // Group commit: the create waits, holding no thread, for the connector's next create_many.
            stored = try await batches.create(resource, app: app, calls: calls) { instance.createMany(kind, $0) }
        } else {
            stored = try await onPool(app) { () throws(SCIMError) in try lease.target.create(kind, resource) }
        }
        let (out, etag) = Self.present(stored, kind, r.schema, baseURL: baseURL, projection: projection)
        return SCIMResult(status: 201, body: out, etag: etag, location: out["meta"]?["location"]?.stringValue)
    }

    public func get(app: String, kind: Kind, id: String, baseURL: String, projection: Projection = .default) async throws(SCIMError) -> SCIMResult {
        try await withTarget(app) { lease throws(SCIMError) in
            let r = try Self.resource(lease, kind)
            let stored = try Self.fetch(lease, r, kind, id)
            let (out, etag) = Self.present(stored, kind, r.schema, baseURL: baseURL, projection: projection)
            return SCIMResult(status: 200, body: out, etag: etag)
        }
    }

    /// Reads one resource: by `get` when the connector has it, else by an `id eq` search.
    static func fetch(_ lease: Lease, _ r: Capabilities.Resource, _ kind: Kind, _ id: String) throws(SCIMError) -> JSON {
        if r.operations.contains(.get) { return try lease.target.get(kind, id) }
        try require(r, .search, "read \(kind.rawValue)s", lease)
        let reply = try lease.target.search(kind, Query(filter: .compare(AttributePath(name: "id"), .eq, .string(id))))
        guard let found = reply.resources.first(where: { $0["id"]?.stringValue == id }) else { throw .notFound("\(kind.rawValue) \(id) not found") }
        return found
    }

    /// Reads the resource, checking it against If-Match when the client sent one.
    static func checkedFetch(_ lease: Lease, _ r: Capabilities.Resource, _ kind: Kind, _ id: String, ifMatch: String?, baseURL: String) throws(SCIMError) -> JSON {
        let current = try fetch(lease, r, kind, id)
        guard let ifMatch else { return current }
        let (_, etag) = present(current, kind, r.schema, baseURL: baseURL)
        guard ResourceVersion.ifMatch(ifMatch, current: etag) else {
            throw SCIMError(status: 412, detail: "\(kind.rawValue) \(id) has changed: its version is \(etag), not \(ifMatch)")
        }
        return current
    }

    /// Whether a replace can be made conditional on the version read (`get` and replace_if,
    /// or a remote's If-Match).
    static func replacesConditionally(_ r: Capabilities.Resource) -> Bool {
        r.operations.isSuperset(of: [.get, .conditionalReplace])
    }

    /// Runs an update of one resource after the updates of it already running in this agent.
    func updating<T: Sendable>(_ app: String, _ kind: Kind, _ id: String, _ body: @escaping @Sendable (Lease) throws(SCIMError) -> T) async throws(SCIMError) -> T {
        try await updates.withLock(app + "/" + kind.rawValue + "/" + id) { () async throws(SCIMError) -> T in
            try await withTarget(app, body)
        }
    }

    public func replace(app: String, kind: Kind, id: String, body: JSON, ifMatch: String?, baseURL: String, projection: Projection = .default) async throws(SCIMError) -> SCIMResult {
        try await updating(app, kind, id) { lease throws(SCIMError) in
            let r = try Self.resource(lease, kind)
            try Self.require(r, .replace, "replace \(kind.rawValue)s", lease)
            if let given = body["id"]?.stringValue, given != id {
                throw .mutability("id \(given) in the body does not match the URL's \(id)")
            }
            let prepared = try self.prepare(body, r, kind, lease)
            var expected: JSON?
            if ifMatch != nil {
                let current = try Self.checkedFetch(lease, r, kind, id, ifMatch: ifMatch, baseURL: baseURL)
                if Self.replacesConditionally(r) { expected = current }
            }
            let stored = try lease.target.replace(kind, id, prepared, ifUnchanged: expected)
            let (out, etag) = Self.present(stored, kind, r.schema, baseURL: baseURL, projection: projection)
            return SCIMResult(status: 200, body: out, etag: etag)
        }
    }

    public func delete(app: String, kind: Kind, id: String, ifMatch: String?, baseURL: String) async throws(SCIMError) -> SCIMResult {
        try await updating(app, kind, id) { lease throws(SCIMError) in
            let r = try Self.resource(lease, kind)
            try Self.require(r, .delete, "delete \(kind.rawValue)s", lease)
            if ifMatch != nil { _ = try Self.checkedFetch(lease, r, kind, id, ifMatch: ifMatch, baseURL: baseURL) }
            try lease.target.delete(kind, id)
            return SCIMResult(status: 204, body: nil)
        }
    }

    public func patch(app: String, kind: Kind, id: String, body: JSON, ifMatch: String?, baseURL: String, projection: Projection = .default) async throws(SCIMError) -> SCIMResult {
        let request = try PatchRequest(json: body)
        return try await updating(app, kind, id) { lease throws(SCIMError) in
            let r = try Self.resource(lease, kind)
            guard r.canPatch else {
                throw .notImplemented("app \(lease.app) cannot update \(kind.rawValue)s: its connector implements neither patch nor get and replace")
            }
            // One form for every target: what a strict remote server accepts.
            let stored = try self.applyPatch(request.standardized(for: r.schema), lease, r, kind, id, ifMatch: ifMatch, baseURL: baseURL)
            let (out, etag) = Self.present(stored, kind, r.schema, baseURL: baseURL, projection: projection)
            return SCIMResult(status: 200, body: out, etag: etag)
        }
    }

    /// PATCH by the connector's own `patch` when it has one; group member adds and removes as
    /// deltas when it supports them; everything else as get → apply → replace, the replace
    /// conditional on the version read where the target can do that, and computed again from
    /// the new version when another writer got there first.
    func applyPatch(_ request: PatchRequest, _ lease: Lease, _ r: Capabilities.Resource, _ kind: Kind, _ id: String,
                           ifMatch: String?, baseURL: String) throws(SCIMError) -> JSON {
        var operations = request.operations
        var ifMatch = ifMatch
        if kind == .group && lease.capabilities.groupMemberDeltas {
            let (deltas, rest) = MemberDeltas.split(operations)
            if !deltas.isEmpty {
                if ifMatch != nil || !rest.isEmpty || !r.operations.contains(.patch) {
                    // The group exists (at the version asked for) before its members change.
                    _ = try Self.checkedFetch(lease, r, kind, id, ifMatch: ifMatch, baseURL: baseURL)
                }
                for d in deltas { try lease.target.changeMembers(id, d.members, add: d.add) }
                operations = rest
                if operations.isEmpty { return try Self.fetch(lease, r, kind, id) }
                ifMatch = nil  // checked; the group has changed since, by this request
            }
        }
        let remaining = PatchRequest(operations: operations)
        if r.operations.contains(.patch) {
            if ifMatch != nil { _ = try Self.checkedFetch(lease, r, kind, id, ifMatch: ifMatch, baseURL: baseURL) }
            let screened = try screen(remaining, r, kind, lease)
            if screened.operations.isEmpty { return try Self.fetch(lease, r, kind, id) }
            return try lease.target.patch(kind, id, screened)
        }
        let conditional = Self.replacesConditionally(r)
        for attempt in 1...Self.updateAttempts {
            let before = try Self.checkedFetch(lease, r, kind, id, ifMatch: ifMatch, baseURL: baseURL)
            var after = try PatchApplier(schema: r.schema).apply(remaining, to: before)
            if !r.passwordWritable { after["password"] = nil }
            if after == before { return before }
            let prepared = try prepare(after, r, kind, lease)
            do {
                return try lease.target.replace(kind, id, prepared, ifUnchanged: conditional ? before : nil)
            } catch where error.status == 412 && conditional {
                guard attempt < Self.updateAttempts else { break }
                // Another writer changed it between the read and the write: a short, growing,
                // jittered pause, then the PATCH again on what it wrote.
                usleep(UInt32.random(in: 0...UInt32(1000 << min(attempt, 5))))
            }
        }
        throw SCIMError(status: 409, detail: "\(kind.rawValue) \(id) was changed by other writers \(Self.updateAttempts) times while this PATCH was applied; send it again")
    }

    public func search(app: String, kind: Kind, query: Query, projection: Projection, baseURL: String) async throws(SCIMError) -> SCIMResult {
        try await withTarget(app) { lease throws(SCIMError) in
            let r = try Self.resource(lease, kind)
            try Self.require(r, .search, "list \(kind.rawValue)s", lease)
            var q = query
            q.filter = q.filter?.canonicalized(by: r.schema)
            try q.filter?.checkDateTimes(in: r.schema)
            if let s = q.sortBy { q.sortBy = r.schema.canonical(s) }
            let limit = lease.capabilities.filterMaxResults
            q.count = min(q.count ?? limit, limit)
            q.withoutMembers = kind == .group && projection.leavesOut("members", of: CoreSchemas.groupID)
                && !(q.filter?.paths.contains { $0.name.caselessEquals("members") } ?? false)
            let reply = try lease.target.search(kind, q)
            var resources = reply.resources
            var total = reply.totalResults ?? resources.count
            if !reply.paged {
                if !reply.filtered, let filter = q.filter {
                    let evaluator = FilterEvaluator(schema: r.schema)
                    resources = resources.filter { evaluator.matches(filter, $0) }
                }
                if !reply.sorted, let sortBy = q.sortBy {
                    ResultShaping.sort(&resources, by: sortBy, order: q.sortOrder, schema: r.schema)
                }
                total = resources.count
                resources = Array(ResultShaping.page(resources, startIndex: q.startIndex, count: q.count))
            }
            let shown = resources.map { Self.present($0, kind, r.schema, baseURL: baseURL, projection: projection).0 }
            return SCIMResult(status: 200, body: ListResponse(totalResults: total, startIndex: q.startIndex, resources: shown).json)
        }
    }

    public func test(app: String) async throws(SCIMError) -> String {
        try await withTarget(app) { lease throws(SCIMError) in try lease.target.test() }
    }

    // MARK: - Discovery

    public func discovery(app: String, baseURL: String) throws(SCIMError) -> Discovery {
        let lease = try registry.lease(app: app)
        defer { lease.release() }
        return Discovery(capabilities: lease.capabilities, baseURL: baseURL)
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
