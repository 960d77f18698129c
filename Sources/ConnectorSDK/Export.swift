import CConnectorABI
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Builds the C descriptor for a connector type. A Swift connector exports itself with:
///
/// ```swift
/// @_cdecl("scimc_connector_entry")
/// public func entry() -> UnsafeRawPointer { exportConnector(MyConnector.self) }
/// ```
public func exportConnector<C: Connector>(_ type: C.Type) -> UnsafeRawPointer {
    Export.lock.withLock { _ in
        if let d = Export.descriptor { return UnsafeRawPointer(d) }
        Export.connectorType = type
        let d = UnsafeMutablePointer<scimc_connector>.allocate(capacity: 1)
        d.initialize(to: Export.makeDescriptor(type))
        Export.descriptor = d
        return UnsafeRawPointer(d)
    }
}

/// One instance as the C side holds it.
final class InstanceBox {
    let connector: any Connector
    let host: UnsafePointer<scimc_host>
    init(connector: any Connector, host: UnsafePointer<scimc_host>) {
        self.connector = connector
        self.host = host
    }
}

enum Export {
    // Written once under `lock` by exportConnector, then only read. Each plugin library has
    // its own copy of this module (plugins link -Bsymbolic), so these are per plugin.
    nonisolated(unsafe) static var connectorType: (any Connector.Type)?
    nonisolated(unsafe) static var descriptor: UnsafeMutablePointer<scimc_connector>?
    static let lock = Locked(())

    static func box(_ instance: OpaquePointer) -> InstanceBox {
        Unmanaged<InstanceBox>.fromOpaque(UnsafeRawPointer(instance)).takeUnretainedValue()
    }

    static func string(_ b: scimc_buf) -> String {
        guard let p = b.ptr, b.len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: b.len), as: UTF8.self)
    }

    static func json(_ b: scimc_buf) throws -> JSON {
        guard let p = b.ptr, b.len > 0 else { return .null }
        return try JSON.parse(UnsafeRawBufferPointer(start: p, count: b.len).bindMemory(to: UInt8.self))
    }

    static func emit(_ host: UnsafePointer<scimc_host>, _ call: OpaquePointer, _ value: JSON) {
        value.serializedBytes().withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { host.pointee.emit(call, $0.baseAddress!, $0.count) }
        }
    }

    /// Runs an operation, turning its result or error into the C protocol.
    static func run(_ instance: OpaquePointer, _ call: OpaquePointer, _ body: (InstanceBox) throws -> JSON?) -> scimc_status {
        let box = box(instance)
        return perform(box.host, call) { try body(box) }
    }

    static func perform(_ host: UnsafePointer<scimc_host>, _ call: OpaquePointer, _ body: () throws -> JSON?) -> scimc_status {
        do {
            if let result = try body() { emit(host, call, result) }
            return SCIMC_OK
        } catch let error as SCIMError {
            fail(host, call, error.scimType?.rawValue, error.detail)
            return Int32(error.status)
        } catch let error as any SCIMErrorConvertible {
            let e = error.scimError
            fail(host, call, e.scimType?.rawValue, e.detail)
            return Int32(e.status)
        } catch {
            fail(host, call, nil, "\(error)")
            return SCIMC_INTERNAL
        }
    }

    static func fail(_ host: UnsafePointer<scimc_host>, _ call: OpaquePointer, _ scimType: String?, _ detail: String) {
        var detail = detail
        detail.withUTF8 { d in
            d.withMemoryRebound(to: CChar.self) { d in
                if let scimType {
                    scimType.withCString { host.pointee.fail(call, $0, d.baseAddress!, d.count) }
                } else {
                    host.pointee.fail(call, nil, d.baseAddress!, d.count)
                }
            }
        }
    }

    /// create_many's reply: `{"resource": …}` or `{"status", "scimType", "detail"}` per item.
    static func outcomes(_ results: [Result<JSON, any Error>], count: Int) -> JSON {
        guard results.count == count else {
            let bug = SCIMError(status: 500, detail: "the connector returned \(results.count) outcomes for \(count) resources")
            return .array(Array(repeating: outcome(.failure(bug)), count: count))
        }
        return .array(results.map(outcome))
    }

    static func outcome(_ result: Result<JSON, any Error>) -> JSON {
        switch result {
        case .success(let resource):
            return ["resource": resource]
        case .failure(let failure):
            guard let error = (failure as? SCIMError) ?? (failure as? any SCIMErrorConvertible)?.scimError else {
                return ["status": 500, "detail": .string("\(failure)")]
            }
            var o: JSONObject = ["status": .number(Double(error.status)), "detail": .string(error.detail)]
            if let t = error.scimType { o["scimType"] = .string(t.rawValue) }
            return .object(o)
        }
    }

    static func ids(_ b: scimc_buf) throws -> [String] {
        guard let members = try json(b).arrayValue else { throw SCIMError.invalidValue("members must be an array") }
        return members.compactMap { $0["value"]?.stringValue }
    }

    static func cString(_ s: String) -> UnsafePointer<CChar> { UnsafePointer(strdup(s)!) }

    static func makeDescriptor<C: Connector>(_ type: C.Type) -> scimc_connector {
        var d = scimc_connector(
            struct_size: UInt32(MemoryLayout<scimc_connector>.size),
            abi_major: UInt16(SCIMC_ABI_MAJOR), abi_minor: UInt16(SCIMC_ABI_MINOR),
            name: cString(C.name), version: cString(C.version),
            flags: C.isConcurrent ? UInt64(SCIMC_FLAG_CONCURRENT) : 0,
            toolchain: cString(SwiftToolchain.current),
            open: { host, call, app, settings, out in
                guard let type = Export.connectorType else { return SCIMC_INTERNAL }
                return Export.perform(host, call) {
                    let connector = try type.init(settings: try Export.json(settings), host: ConnectorHost(table: host, app: String(cString: app)))
                    let box = InstanceBox(connector: connector, host: host)
                    out.pointee = OpaquePointer(Unmanaged.passRetained(box).toOpaque())
                    return nil
                }
            },
            close: { instance in
                let unmanaged = Unmanaged<InstanceBox>.fromOpaque(UnsafeRawPointer(instance))
                unmanaged.takeUnretainedValue().connector.close()
                unmanaged.release()
            },
            test: { i, c in Export.run(i, c) { ["message": .string(try $0.connector.test())] } },
            describe: { i, c in Export.run(i, c) { $0.connector.describe() } },
            users: userOps(type), groups: groupOps(type), add_members: nil, remove_members: nil)
        if type is any GroupMembership.Type {
            d.add_members = { i, c, g, m in
                Export.run(i, c) {
                    try ($0.connector as! any GroupMembership).addMembers(groupID: Export.string(g), memberIDs: try Export.ids(m))
                    return nil
                }
            }
            d.remove_members = { i, c, g, m in
                Export.run(i, c) {
                    try ($0.connector as! any GroupMembership).removeMembers(groupID: Export.string(g), memberIDs: try Export.ids(m))
                    return nil
                }
            }
        }
        return d
    }

    static func allocate(_ ops: scimc_resource_ops) -> UnsafePointer<scimc_resource_ops>? {
        guard ops.create != nil || ops.create_many != nil || ops.get != nil || ops.replace != nil || ops.replace_if != nil || ops.patch != nil || ops.remove != nil || ops.search != nil else {
            return nil
        }
        let p = UnsafeMutablePointer<scimc_resource_ops>.allocate(capacity: 1)
        p.initialize(to: ops)
        return UnsafePointer(p)
    }

    static func userOps<C: Connector>(_ type: C.Type) -> UnsafePointer<scimc_resource_ops>? {
        var ops = scimc_resource_ops()
        ops.struct_size = UInt32(MemoryLayout<scimc_resource_ops>.size)
        if type is any UserCreating.Type {
            ops.create = { i, c, r in Export.run(i, c) { try ($0.connector as! any UserCreating).createUser(try Export.json(r)) } }
        }
        if type is any UserBatchCreating.Type {
            ops.create_many = { i, c, r in
                Export.run(i, c) {
                    guard let resources = try Export.json(r).arrayValue else { throw SCIMError.invalidValue("create_many takes an array of resources") }
                    return Export.outcomes(($0.connector as! any UserBatchCreating).createUsers(resources), count: resources.count)
                }
            }
        }
        if type is any UserReading.Type {
            ops.get = { i, c, id in Export.run(i, c) { try ($0.connector as! any UserReading).getUser(id: Export.string(id)) } }
        }
        if type is any UserReplacing.Type {
            ops.replace = { i, c, id, r in
                Export.run(i, c) { try ($0.connector as! any UserReplacing).replaceUser(id: Export.string(id), with: try Export.json(r), ifUnchanged: nil) }
            }
            ops.replace_if = { i, c, id, r, x in
                Export.run(i, c) {
                    try ($0.connector as! any UserReplacing).replaceUser(id: Export.string(id), with: try Export.json(r), ifUnchanged: try Export.json(x))
                }
            }
        }
        if type is any UserPatching.Type {
            ops.patch = { i, c, id, p in
                Export.run(i, c) { try ($0.connector as! any UserPatching).patchUser(id: Export.string(id), try PatchRequest(json: try Export.json(p))) }
            }
        }
        if type is any UserDeleting.Type {
            ops.remove = { i, c, id in Export.run(i, c) { try ($0.connector as! any UserDeleting).deleteUser(id: Export.string(id)); return nil } }
        }
        if type is any UserSearching.Type {
            ops.search = { i, c, q in Export.run(i, c) { try ($0.connector as! any UserSearching).searchUsers(try Query(json: try Export.json(q))).json } }
        }
        return allocate(ops)
    }

    static func groupOps<C: Connector>(_ type: C.Type) -> UnsafePointer<scimc_resource_ops>? {
        var ops = scimc_resource_ops()
        ops.struct_size = UInt32(MemoryLayout<scimc_resource_ops>.size)
        if type is any GroupCreating.Type {
            ops.create = { i, c, r in Export.run(i, c) { try ($0.connector as! any GroupCreating).createGroup(try Export.json(r)) } }
        }
        if type is any GroupReading.Type {
            ops.get = { i, c, id in Export.run(i, c) { try ($0.connector as! any GroupReading).getGroup(id: Export.string(id)) } }
        }
        if type is any GroupReplacing.Type {
            ops.replace = { i, c, id, r in
                Export.run(i, c) { try ($0.connector as! any GroupReplacing).replaceGroup(id: Export.string(id), with: try Export.json(r), ifUnchanged: nil) }
            }
            ops.replace_if = { i, c, id, r, x in
                Export.run(i, c) {
                    try ($0.connector as! any GroupReplacing).replaceGroup(id: Export.string(id), with: try Export.json(r), ifUnchanged: try Export.json(x))
                }
            }
        }
        if type is any GroupPatching.Type {
            ops.patch = { i, c, id, p in
                Export.run(i, c) { try ($0.connector as! any GroupPatching).patchGroup(id: Export.string(id), try PatchRequest(json: try Export.json(p))) }
            }
        }
        if type is any GroupDeleting.Type {
            ops.remove = { i, c, id in Export.run(i, c) { try ($0.connector as! any GroupDeleting).deleteGroup(id: Export.string(id)); return nil } }
        }
        if type is any GroupSearching.Type {
            ops.search = { i, c, q in Export.run(i, c) { try ($0.connector as! any GroupSearching).searchGroups(try Query(json: try Export.json(q))).json } }
        }
        return allocate(ops)
    }
}
