import CConnectorABI
import Foundation
import NIOConcurrencyHelpers
import SCIMKit

/// One app's open instance of a connector, and the only place where the agent calls into a
/// plugin. Calls block: make them on the connector thread pool (`ConnectorCalls`).
public final class ConnectorInstance: Target, @unchecked Sendable {
    // @unchecked: `pointer` is only used through `invoke`, which serialises calls with
    // `serial` unless the plugin declared itself concurrent.
    public let library: PluginLibrary
    public let app: String
    let pointer: OpaquePointer
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
    public static func open(_ library: PluginLibrary, app: String, settings: JSON) throws(OpenError) -> ConnectorInstance {
        let record = CallRecord()
        var instance: OpaquePointer?
        var settingsText = settings.serialized()
        let status = settingsText.withUTF8 { buf in
            buf.withMemoryRebound(to: CChar.self) { chars in
                record.with { call in
                    app.withCString { name in
                        library.descriptor.pointee.open(
                            UnsafePointer(library.hostTable.pointer), call, name, scimc_buf(ptr: chars.baseAddress, len: chars.count), &instance)
                    }
                }
            }
        }
        if status != SCIMC_OK || instance == nil {
            throw OpenError(app: app, connector: library.name, error: Self.error(status == SCIMC_OK ? SCIMC_INTERNAL : status, record, library.name))
        }
        return ConnectorInstance(library: library, app: app, pointer: instance!)
    }

    public var description: String { "connector \(library.name)" }
    public var name: String { library.name }
    public var version: String { library.version }

    private init(library: PluginLibrary, app: String, pointer: OpaquePointer) {
        self.library = library
        self.app = app
        self.pointer = pointer
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

    /// Makes one call; returns the JSON it emitted (nil if none), or throws its SCIM error.
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

    public func create(_ kind: Capabilities.ResourceKind, _ resource: JSON) throws(SCIMError) -> JSON {
        guard let fn = ops(kind)?.create else {
            guard ops(kind)?.create_many != nil else { throw notImplemented("creating \(kind.rawValue)s") }
            return try createMany(kind, [resource])[0].get()
        }
        return try required(invoke { i, c in Self.buf(resource) { fn(i, c, $0) } }, "create")
    }

    /// Creates that wait for the next `create_many` call, if the connector has one.
    func batches(_ kind: Capabilities.ResourceKind) -> CreateBatches? { kind == .user ? userCreates : groupCreates }

    /// One `create_many` call: one outcome per resource, in order. If the call itself fails,
    /// every resource fails with its error.
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

    public func get(_ kind: Capabilities.ResourceKind, _ id: String) throws(SCIMError) -> JSON {
        guard let fn = ops(kind)?.get else { throw notImplemented("reading \(kind.rawValue)s") }
        do {
            return try required(invoke { i, c in Self.buf(id) { fn(i, c, $0) } }, "get")
        } catch where error.status == 404 {
            throw .notFound("\(kind.rawValue) \(id) not found")
        }
    }

    public func replace(_ kind: Capabilities.ResourceKind, _ id: String, _ resource: JSON, ifUnchanged expected: JSON?) throws(SCIMError) -> JSON {
        if let expected {
            guard let fn = ops(kind)?.replace_if else { throw notImplemented("conditional replaces of \(kind.rawValue)s") }
            return try required(invoke { i, c in Self.buf(id) { idb in Self.buf(resource) { rb in Self.buf(expected) { fn(i, c, idb, rb, $0) } } } }, "replace_if")
        }
        guard let fn = ops(kind)?.replace else { throw notImplemented("replacing \(kind.rawValue)s") }
        return try required(invoke { i, c in Self.buf(id) { idb in Self.buf(resource) { fn(i, c, idb, $0) } } }, "replace")
    }

    public func patch(_ kind: Capabilities.ResourceKind, _ id: String, _ patch: PatchRequest) throws(SCIMError) -> JSON {
        guard let fn = ops(kind)?.patch else { throw notImplemented("patching \(kind.rawValue)s") }
        return try required(invoke { i, c in Self.buf(id) { idb in Self.buf(patch.json) { fn(i, c, idb, $0) } } }, "patch")
    }

    public func delete(_ kind: Capabilities.ResourceKind, _ id: String) throws(SCIMError) {
        guard let fn = ops(kind)?.remove else { throw notImplemented("deleting \(kind.rawValue)s") }
        do {
            _ = try invoke { i, c in Self.buf(id) { fn(i, c, $0) } }
        } catch where error.status == 404 {
            throw .notFound("\(kind.rawValue) \(id) not found")
        }
    }

    public func search(_ kind: Capabilities.ResourceKind, _ query: Query) throws(SCIMError) -> SearchReply {
        guard let fn = ops(kind)?.search else { throw notImplemented("listing \(kind.rawValue)s") }
        let reply = try required(invoke { i, c in Self.buf(query.json) { fn(i, c, $0) } }, "search")
        return try SearchReply(json: reply, connector: library.name)
    }

    public func changeMembers(_ groupID: String, _ members: [JSON], add: Bool) throws(SCIMError) {
        let d = library.descriptor.pointee
        guard let fn = add ? d.add_members : d.remove_members else { throw notImplemented("membership changes") }
        let text = JSON.array(members).serialized()
        do {
            _ = try invoke { i, c in Self.buf(groupID) { g in Self.buf(text) { fn(i, c, g, $0) } } }
        } catch where error.status == 404 {
            throw .notFound("Group \(groupID) not found")
        }
    }

    public func test() throws(SCIMError) -> String {
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

/// A search reply: what the target did (filter, sort, page) and what is left to the agent.
public struct SearchReply: Sendable {
    public var resources: [JSON]
    public var totalResults: Int?
    public var filtered: Bool
    public var sorted: Bool
    public var paged: Bool

    public init(resources: [JSON], totalResults: Int?, filtered: Bool, sorted: Bool, paged: Bool) {
        self.resources = resources
        self.totalResults = totalResults
        self.filtered = filtered
        self.sorted = sorted
        self.paged = paged
    }

    /// A connector's reply, checked against the rules in `scim_connector.h`.
    init(json: JSON, connector: String) throws(SCIMError) {
        guard let resources = json["Resources"]?.arrayValue else {
            throw SCIMError(status: 502, detail: "connector \(connector) search reply has no Resources array")
        }
        self.resources = resources
        filtered = json["filtered"]?.boolValue ?? false
        sorted = json["sorted"]?.boolValue ?? false
        paged = json["paged"]?.boolValue ?? false
        totalResults = json["totalResults"]?.intValue
        if paged && (!filtered || totalResults == nil) {
            throw SCIMError(status: 502, detail: "connector \(connector) paged a search it did not filter, or gave no totalResults")
        }
    }
}
