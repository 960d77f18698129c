import CConnectorABI
import Foundation
import NIOConcurrencyHelpers
import SCIMKit

/// One app's open instance of a connector, and the only place where the agent calls into a
/// plugin. Each call runs on the connector thread pool (`BlockingCallPool`), or inline for a
/// connector that declared `SCIMC_FLAG_NONBLOCKING`; creates go through `create_many` in
/// batches when the connector has it (`CreateBatches`).
public final class ConnectorInstance: Target, @unchecked Sendable {
    // @unchecked: `pointer` is only used through `invoke`, which serialises calls with
    // `serial` unless the plugin declared itself concurrent.
    public let library: PluginLibrary
    public let app: String
    let pointer: OpaquePointer
    let calls: BlockingCallPool
    private let serial: NIOLock?
    /// Per resource type, when the connector has `create_many`: where creates wait for it.
    let userCreates: CreateBatches?
    let groupCreates: CreateBatches?

    public struct OpenError: Error, CustomStringConvertible {
        public var app: String
        public var connector: String
        public var error: SCIMError
        public var description: String { "app \(app): connector \(connector) could not open: \(error.detail)" }
    }

    /// Opens an instance with the app's settings. Blocking.
    public static func open(_ library: PluginLibrary, app: String, settings: JSON, calls: BlockingCallPool) throws(OpenError) -> ConnectorInstance {
        let record = CallRecord()
        var instance: OpaquePointer?
        let status = buf(settings) { settingsBuf in
            record.with { call in
                app.withCString { name in library.descriptor.pointee.open(UnsafePointer(library.hostTable.pointer), call, name, settingsBuf, &instance) }
            }
        }
        if status != SCIMC_OK || instance == nil {
            throw OpenError(app: app, connector: library.name, error: Self.error(status == SCIMC_OK ? SCIMC_INTERNAL : status, record, library.name))
        }
        return ConnectorInstance(library: library, app: app, pointer: instance!, calls: calls)
    }

    public var description: String { "connector \(library.name)" }
    public var name: String { library.name }
    public var version: String { library.version }

    private init(library: PluginLibrary, app: String, pointer: OpaquePointer, calls: BlockingCallPool) {
        self.library = library
        self.app = app
        self.pointer = pointer
        self.calls = calls
        self.serial = library.isConcurrent ? nil : NIOLock()
        self.userCreates = library.users?.create_many == nil ? nil : CreateBatches()
        self.groupCreates = library.groups?.create_many == nil ? nil : CreateBatches()
    }

    /// Closes the instance: the plugin's close() runs after every call on it has returned.
    public func close() {
        serial?.lock()
        library.descriptor.pointee.close(pointer)
        serial?.unlock()
    }

    /// Runs `body` (calls into the plugin) where this connector's calls belong: inline when it
    /// never blocks, else on the pool, holding no thread of the caller's while it waits.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws(SCIMError) -> T) async throws(SCIMError) -> T {
        try await measured { () async throws(SCIMError) -> T in
            if library.neverBlocks { return try body() }
            return try await calls.run(app: app, body)
        }
    }

    /// `provisioning_connector_call_duration_seconds` and `…_errors_total` for one call.
    func measured<T: Sendable>(_ call: () async throws(SCIMError) -> T) async throws(SCIMError) -> T {
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            let result = try await call()
            AgentMetrics.connectorCall(app: app, connector: library.name, isolation: "in-process", started: started, error: nil)
            return result
        } catch {
            AgentMetrics.connectorCall(app: app, connector: library.name, isolation: "in-process", started: started, error: error)
            throw error
        }
    }

    /// Makes one call on this thread; returns the JSON it emitted (nil if none), or throws
    /// its SCIM error.
    func invoke(_ body: (OpaquePointer, OpaquePointer) -> scimc_status) throws(SCIMError) -> JSON? {
        let record = CallRecord()
        serial?.lock()
        let status = record.with { call in body(pointer, call) }
        serial?.unlock()
        guard status == SCIMC_OK else { throw Self.error(status, record, library.name) }
        guard let bytes = record.result else { return nil }
        do {
            return try JSON.parse(bytes)
        } catch {
            throw SCIMError(status: 502, detail: "connector \(library.name) replied with invalid JSON: \(error.detail)")
        }
    }

    static func error(_ status: scimc_status, _ record: CallRecord, _ name: String) -> SCIMError {
        guard (400...599).contains(status) else {
            return SCIMError(status: 502, detail: "connector \(name) returned the invalid status \(status)")
        }
        return failure(Int(status), scimType: record.scimType, detail: record.detail, name)
    }

    /// A connector's error status (400...599) with its scimType and detail, or their defaults.
    static func failure(_ status: Int, scimType: String?, detail: String?, _ name: String) -> SCIMError {
        let type = scimType.map(SCIMError.ScimType.init(rawValue:)) ?? (status == 409 ? .uniqueness : status == 400 ? .invalidValue : nil)
        return SCIMError(status: status, scimType: type, detail: detail ?? "connector \(name) failed with status \(status)")
    }

    // MARK: - Typed calls

    static func buf<R>(_ s: String, _ body: (scimc_buf) -> R) -> R {
        var s = s
        return s.withUTF8 { b in b.withMemoryRebound(to: CChar.self) { body(scimc_buf(ptr: $0.baseAddress, len: $0.count)) } }
    }

    static func buf<R>(_ json: JSON, _ body: (scimc_buf) -> R) -> R {
        json.serializedBytes().withUnsafeBufferPointer { b in b.withMemoryRebound(to: CChar.self) { body(scimc_buf(ptr: $0.baseAddress, len: $0.count)) } }
    }

    func ops(_ kind: Capabilities.ResourceKind) -> scimc_resource_ops? { kind == .user ? library.users : library.groups }

    func notImplemented(_ what: String) -> SCIMError { .notImplemented("connector \(library.name) does not implement \(what)") }

    /// By `create` when the connector has it; by `create_many` when it has only that, or has
    /// both: then the creates arriving while one call runs wait, holding no thread, and go
    /// together in the next (group commit, `CreateBatches`).
    public func create(_ kind: Capabilities.ResourceKind, _ resource: JSON) async throws(SCIMError) -> JSON {
        if let batches = kind == .user ? userCreates : groupCreates {
            return try await measured { () async throws(SCIMError) -> JSON in
                try await batches.create(resource, app: app, calls: calls) { self.createMany(kind, $0) }
            }
        }
        guard let fn = ops(kind)?.create else { throw notImplemented("creating \(kind.rawValue)s") }
        return try await run { () throws(SCIMError) in try self.required(self.invoke { i, c in Self.buf(resource) { fn(i, c, $0) } }, "create") }
    }

    /// One `create_many` call, on this thread: one outcome per resource, in order. If the call
    /// itself fails, every resource fails with its error.
    func createMany(_ kind: Capabilities.ResourceKind, _ resources: [JSON]) -> [Result<JSON, SCIMError>] {
        do throws(SCIMError) {
            guard let fn = ops(kind)?.create_many else { throw notImplemented("creating \(kind.rawValue)s") }
            let reply = try invoke { i, c in Self.buf(JSON.array(resources)) { fn(i, c, $0) } }
            guard let outcomes = reply?.arrayValue, outcomes.count == resources.count else {
                throw SCIMError(status: 502, detail: "connector \(library.name) replied to create_many with \(reply?.arrayValue?.count ?? 0) outcomes for \(resources.count) resources")
            }
            return outcomes.map(outcome)
        } catch {
            return Array(repeating: .failure(error), count: resources.count)
        }
    }

    /// One item of a `create_many` reply: `{"resource": …}` or `{"status", "scimType", "detail"}`.
    func outcome(_ o: JSON) -> Result<JSON, SCIMError> {
        if let resource = o["resource"], case .object = resource { return .success(resource) }
        guard let status = o["status"]?.intValue, (400...599).contains(status) else {
            return .failure(SCIMError(status: 502, detail: "connector \(library.name) replied to create_many with an outcome that has neither a resource nor an error status"))
        }
        return .failure(Self.failure(status, scimType: o["scimType"]?.stringValue, detail: o["detail"]?.stringValue, library.name))
    }

    public func get(_ kind: Capabilities.ResourceKind, _ id: String) async throws(SCIMError) -> JSON {
        guard let fn = ops(kind)?.get else { throw notImplemented("reading \(kind.rawValue)s") }
        do {
            return try await run { () throws(SCIMError) in try self.required(self.invoke { i, c in Self.buf(id) { fn(i, c, $0) } }, "get") }
        } catch where error.status == 404 {
            throw .notFound("\(kind.rawValue) \(id) not found")
        }
    }

    public func replace(_ kind: Capabilities.ResourceKind, _ id: String, _ resource: JSON, ifUnchanged expected: JSON?) async throws(SCIMError) -> JSON {
        if let expected {
            guard let fn = ops(kind)?.replace_if else { throw notImplemented("conditional replaces of \(kind.rawValue)s") }
            return try await run { () throws(SCIMError) in
                try self.required(self.invoke { i, c in Self.buf(id) { idb in Self.buf(resource) { rb in Self.buf(expected) { fn(i, c, idb, rb, $0) } } } }, "replace_if")
            }
        }
        guard let fn = ops(kind)?.replace else { throw notImplemented("replacing \(kind.rawValue)s") }
        return try await run { () throws(SCIMError) in
            try self.required(self.invoke { i, c in Self.buf(id) { idb in Self.buf(resource) { fn(i, c, idb, $0) } } }, "replace")
        }
    }

    public func patch(_ kind: Capabilities.ResourceKind, _ id: String, _ patch: PatchRequest) async throws(SCIMError) -> JSON {
        guard let fn = ops(kind)?.patch else { throw notImplemented("patching \(kind.rawValue)s") }
        return try await run { () throws(SCIMError) in
            try self.required(self.invoke { i, c in Self.buf(id) { idb in Self.buf(patch.json) { fn(i, c, idb, $0) } } }, "patch")
        }
    }

    public func delete(_ kind: Capabilities.ResourceKind, _ id: String) async throws(SCIMError) {
        guard let fn = ops(kind)?.remove else { throw notImplemented("deleting \(kind.rawValue)s") }
        do {
            try await run { () throws(SCIMError) in _ = try self.invoke { i, c in Self.buf(id) { fn(i, c, $0) } } }
        } catch where error.status == 404 {
            throw .notFound("\(kind.rawValue) \(id) not found")
        }
    }

    public func search(_ kind: Capabilities.ResourceKind, _ query: Query) async throws(SCIMError) -> SearchResult {
        guard let fn = ops(kind)?.search else { throw notImplemented("listing \(kind.rawValue)s") }
        return try await run { () throws(SCIMError) in
            let reply = try self.required(self.invoke { i, c in Self.buf(query.json) { fn(i, c, $0) } }, "search")
            return try SearchResult(json: reply, connector: self.library.name)
        }
    }

    public func changeMembers(_ groupID: String, _ members: [JSON], add: Bool) async throws(SCIMError) {
        let d = library.descriptor.pointee
        guard let fn = add ? d.add_members : d.remove_members else { throw notImplemented("membership changes") }
        do {
            try await run { () throws(SCIMError) in _ = try self.invoke { i, c in Self.buf(groupID) { g in Self.buf(JSON.array(members)) { fn(i, c, g, $0) } } } }
        } catch where error.status == 404 {
            throw .notFound("Group \(groupID) not found")
        }
    }

    public func test() async throws(SCIMError) -> String {
        try await run { () throws(SCIMError) in try self.testNow() }
    }

    /// `test` on this thread (the registry's, when it checks a new generation).
    public func testNow() throws(SCIMError) -> String {
        guard let fn = library.descriptor.pointee.test else { return "connector has no test; it opened" }
        let reply = try invoke { i, c in fn(i, c) }
        return reply?["message"]?.stringValue ?? "ok"
    }

    func describe() throws(SCIMError) -> JSON? {
        guard let fn = library.descriptor.pointee.describe else { return nil }
        return try invoke { i, c in fn(i, c) }
    }

    private func required(_ value: JSON?, _ op: String) throws(SCIMError) -> JSON {
        guard let value, case .object = value else {
            throw SCIMError(status: 502, detail: "connector \(library.name) returned no resource from \(op)")
        }
        return value
    }
}
