import CFFI
import ConnectorSDK
import Foundation

/// `native`: a C library bound by a manifest (`settings.manifest`), called through libffi,
/// with no code of the admin's own. Each SCIM operation the manifest maps is one call (create,
/// get, replace, delete; searches by `find` or by `list`), and what is mapped is what is
/// advertised: `describe` names the operations and attributes the manifest gives.
public final class NativeConnector: UserCreating, UserReading, UserReplacing, UserDeleting, UserSearching,
    GroupCreating, GroupReading, GroupReplacing, GroupDeleting, GroupSearching
{
    public static let name = "native"
    public static let version = "1.0.0"

    let manifest: Manifest
    let library: NativeLibrary
    let settings: JSON
    /// The functions by their key path in the manifest (`users.create`).
    let functions: [String: BoundFunction]
    /// What `open` returned: every call's `handle` argument. The agent makes one call at a
    /// time per instance (`isConcurrent` is false), so the library needs no thread safety.
    var session: UInt64 = 0

    public init(settings: JSON, host: ConnectorHost) throws {
        guard let path = settings["manifest"]?.stringValue, !path.isEmpty else {
            throw SCIMError.invalidValue("settings.manifest is missing: the path of the manifest that describes the library")
        }
        self.settings = settings
        let manifest: Manifest, library: NativeLibrary
        do {
            manifest = try Manifest.load(path)
            library = try NativeLibrary(manifest: manifest)
        } catch {
            throw SCIMError(status: 500, detail: error.description)
        }
        self.manifest = manifest
        self.library = library
        let file = (path as NSString).lastPathComponent
        var problems: [String] = []
        var bound: [String: BoundFunction] = [:]
        func bind(_ f: Manifest.Function?, _ returns: BoundFunction.Returns) {
            guard let f else { return }
            if let b = library.bind(f, returns: returns, file: file, problems: &problems) { bound[f.key] = b }
        }
        for f in manifest.functions {
            bind(f, f.key == "open" || f.key == "errorText" ? .pointer : f.key == "close" ? .void : .int32)
        }
        // Settings an argument reads must be there.
        for f in bound.values {
            for a in f.function.arguments {
                if case .setting(let name) = a.source, settings[name] == nil { problems.append("\(file): \(a.key).from: the app's settings have no \(name)") }
            }
        }
        guard problems.isEmpty else { throw SCIMError(status: 500, detail: problems.joined(separator: "; ")) }
        functions = bound
        if let open = manifest.open, let f = functions[open.key] {
            session = try withSlots(f, resource: nil, id: nil, value: nil) { slots, _ in f.call(slots) }
            guard session != 0 else { throw SCIMError(status: 503, detail: "\(file): open: \(open.name) returned NULL") }
        }
    }

    public func close() {
        if let c = manifest.close, let f = functions[c.key] {
            _ = try? withSlots(f, resource: nil, id: nil, value: nil) { slots, _ in f.call(slots) }
        }
    }

    public func test() throws -> String {
        "\(library.name) loaded; \(functions.count) functions bound from \((manifest.file as NSString).lastPathComponent)"
    }

    /// What the manifest maps: its operations and attributes, per resource type.
    public func describe() -> JSON {
        func facts(_ ops: Manifest.Operations?) -> JSON {
            guard let ops else { return .bool(false) }
            var operations: [JSON] = []
            if ops.create != nil { operations.append("create") }
            if ops.get != nil { operations.append("get") }
            if ops.replace != nil { operations.append("replace") }
            if ops.delete != nil { operations.append("delete") }
            if !ops.find.isEmpty || ops.list != nil { operations.append("search") }
            var names: [String] = [], required: [String] = []
            for f in [ops.create, ops.get, ops.replace].compactMap({ $0 }) {
                for a in f.arguments {
                    switch a.source {
                    case .attribute(let p, _), .buffer(_, .attribute(let p)): names.append(p.description)
                    case .output(.attribute(let p)):
                        // Read back through a scalar output, it always has a value.
                        names.append(p.description)
                        required.append(p.description)
                    default: break
                    }
                }
            }
            var seen = Set<String>()
            return ["operations": .array(operations), "attributes": .array(names.filter { seen.insert($0).inserted }.map(JSON.string)),
                    "required": .array(Array(Set(required)).sorted().map(JSON.string)), "passwordWritable": .bool(names.contains("password"))]
        }
        return ["users": facts(manifest.users), "groups": facts(manifest.groups)]
    }

    // MARK: - Calls

    func ops(_ kind: Capabilities.ResourceKind) throws -> Manifest.Operations {
        guard let ops = kind == .user ? manifest.users : manifest.groups else { throw SCIMError.notImplemented("the manifest maps no \(kind.rawValue)s") }
        return ops
    }

    func bound(_ f: Manifest.Function?, _ what: String) throws -> BoundFunction {
        guard let f, let b = functions[f.key] else { throw SCIMError.notImplemented("the manifest maps no \(what)") }
        return b
    }

    /// Fills one 8-byte slot per argument (C strings and buffers allocated, freed after),
    /// runs `body`, and hands it the outputs read back.
    func withSlots<T>(_ f: BoundFunction, resource: JSON?, id: String?, value: String?, state: UnsafeMutablePointer<Int64>? = nil,
                      _ body: (UnsafeMutablePointer<UInt64>, () -> [(Manifest.Target, JSON)]) throws -> T) throws -> T {
        let args = f.function.arguments
        let slots = UnsafeMutablePointer<UInt64>.allocate(capacity: max(args.count, 1))
        slots.initialize(repeating: 0, count: max(args.count, 1))
        var owned: [UnsafeMutableRawPointer] = []
        defer {
            for p in owned { free(p) }
            slots.deallocate()
        }
        var buffers: [Manifest.Target: (UnsafeMutablePointer<CChar>, Int)] = [:]
        var outputs: [(Int, Manifest.Target, Manifest.CType, UnsafeMutableRawPointer)] = []
        func string(_ s: String?) -> UInt64 {
            guard let s, let p = strdup(s) else { return 0 }
            owned.append(UnsafeMutableRawPointer(p))
            return UInt64(UInt(bitPattern: p))
        }
        func scalar(_ v: JSON?, _ type: Manifest.CType) throws -> UInt64 {
            if type == .string { return string(v.flatMap(Self.text)) }
            let number: Double
            switch v {
            case .bool(let b)?: number = b ? 1 : 0
            case .number(let n)?: number = n
            case .string(let s)?: guard let n = Double(s) else { throw SCIMError.invalidValue("\(s) is not a number (\(type.rawValue) argument)") }; number = n
            case nil, .null?: number = 0
            default: throw SCIMError.invalidValue("a \(type.rawValue) argument cannot take \(v.map { "\($0)" } ?? "")")
            }
            switch type {
            case .double: return number.bitPattern
            case .int8, .int16, .int32, .int64: return UInt64(bitPattern: Int64(number))
            default: return UInt64(max(0, number))
            }
        }
        // Buffers first, so that each length argument finds its buffer's size.
        for (i, a) in args.enumerated() {
            if case .buffer(let size, let t) = a.source, let p = calloc(size, 1) {
                owned.append(p)
                buffers[t] = (p.assumingMemoryBound(to: CChar.self), size)
                slots[i] = UInt64(UInt(bitPattern: p))
            }
        }
        for (i, a) in args.enumerated() {
            switch a.source {
            case .handle: slots[i] = session
            case .id: slots[i] = string(id)
            case .filterValue: slots[i] = string(value)
            case .setting(let name): slots[i] = try scalar(settings[name], a.type)
            case .constant(let v): slots[i] = try scalar(v, a.type)
            case .attribute(let path, let fallback): slots[i] = try scalar(resource.flatMap { Self.value(path, in: $0) } ?? fallback, a.type)
            case .lengthOf(let t): slots[i] = UInt64(buffers[t]?.1 ?? 0)
            case .state: slots[i] = UInt64(UInt(bitPattern: state))
            case .output(let t):
                if let p = calloc(1, 8) {
                    owned.append(p)
                    outputs.append((i, t, a.type, p))
                    slots[i] = UInt64(UInt(bitPattern: p))
                }
            case .buffer: break
            }
        }
        return try body(slots) {
            var out: [(Manifest.Target, JSON)] = []
            for (t, (p, size)) in buffers {
                p[size - 1] = 0
                out.append((t, .string(String(cString: p))))
            }
            for (_, t, type, p) in outputs {
                switch type {
                case .int32Out: out.append((t, .number(Double(p.load(as: Int32.self)))))
                case .int64Out: out.append((t, .number(Double(p.load(as: Int64.self)))))
                case .doubleOut: out.append((t, .number(p.load(as: Double.self))))
                default: out.append((t, .bool(p.load(as: UInt8.self) != 0)))
                }
            }
            return out
        }
    }

    /// Calls an int-returning function; its outcome by the results mapping, the library's
    /// error text as the detail of a failure. `end`: a result that is not a failure (a list's).
    func invoke(_ f: BoundFunction, resource: JSON? = nil, id: String? = nil, value: String? = nil,
                state: UnsafeMutablePointer<Int64>? = nil, end: Int64? = nil) throws -> (ended: Bool, outputs: [(Manifest.Target, JSON)]) {
        try withSlots(f, resource: resource, id: id, value: value, state: state) { slots, read -> (ended: Bool, outputs: [(Manifest.Target, JSON)]) in
            let result = Int64(Int32(truncatingIfNeeded: f.call(slots)))
            if let end, result == end { return (true, []) }
            let status = (f.function.results ?? manifest.results).status(result)
            guard status == 0 else { throw SCIMError(status: status, scimType: Self.scimType(status), detail: "\(f.function.name) returned \(result)\(errorText().map { ": " + $0 } ?? "")") }
            return (false, read())
        }
    }

    /// The library's text for its last error, if the manifest names the function.
    func errorText() -> String? {
        guard let e = manifest.errorText, let f = functions[e.key] else { return nil }
        return try? withSlots(f, resource: nil, id: nil, value: nil) { slots, _ -> String? in
            let p = f.call(slots)
            guard p != 0, let s = UnsafePointer<CChar>(bitPattern: UInt(p)) else { return nil }
            let text = String(cString: s)
            return text.isEmpty ? nil : text
        }
    }

    static func scimType(_ status: Int) -> SCIMError.ScimType? {
        switch status {
        case 409: .uniqueness
        case 400: .invalidValue
        default: nil
        }
    }

    /// A SCIM value as an argument's text (numbers without a fraction as integers).
    static func text(_ v: JSON) -> String? {
        switch v {
        case .string(let s): s
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        default: nil
        }
    }

    /// The value at a path: `name.givenName`, or for a multi-valued attribute (`emails.value`)
    /// that of its primary value, else its first.
    static func value(_ path: AttributePath, in resource: JSON) -> JSON? {
        var container = resource
        if let urn = path.schema, let ext = resource[urn] { container = ext }
        guard let top = container[path.name] else { return nil }
        guard let sub = path.subAttribute else { return top.isNull ? nil : top }
        if let list = top.arrayValue {
            let chosen = list.first { $0["primary"]?.boolValue == true } ?? list.first
            return chosen?[sub]
        }
        return top[sub]
    }

    /// Outputs into a resource: `name.givenName` into `name`, `emails.value` as the one value
    /// of `emails`; empty text leaves the attribute out.
    func resource(_ kind: Capabilities.ResourceKind, id: String, _ outputs: [(Manifest.Target, JSON)], schema: ResourceSchema) -> JSON {
        var o = JSONObject()
        o["schemas"] = .array([.string(schema.core.id)])
        o["id"] = .string(id)
        for (target, value) in outputs {
            guard case .attribute(let path) = target, value != .string("") else { continue }
            let definition = schema.definition(for: AttributePath(schema: path.schema, name: path.name))
            var v = value
            if schema.definition(for: path)?.type == .boolean, case .number(let n) = value { v = .bool(n != 0) }
            var holder = path.schema.flatMap { o[$0]?.objectValue } ?? o
            if let sub = path.subAttribute {
                if definition?.multiValued == true {
                    var item = holder[path.name]?.arrayValue?.first?.objectValue ?? JSONObject()
                    item[sub] = v
                    holder[path.name] = .array([.object(item)])
                } else {
                    var inner = holder[path.name]?.objectValue ?? JSONObject()
                    inner[sub] = v
                    holder[path.name] = .object(inner)
                }
            } else {
                holder[path.name] = v
            }
            if let urn = path.schema { o[urn] = .object(holder) } else { o = holder }
        }
        return .object(o)
    }

    func id(_ outputs: [(Manifest.Target, JSON)]) throws -> String {
        guard let id = outputs.first(where: { $0.0 == .id })?.1, let text = Self.text(id), !text.isEmpty else {
            throw SCIMError(status: 502, detail: "the library gave no id")
        }
        return text
    }

    func create(_ kind: Capabilities.ResourceKind, _ resource: JSON) throws -> JSON {
        let ops = try ops(kind)
        let (_, outputs) = try invoke(try bound(ops.create, "\(kind.rawValue) create"), resource: resource)
        return try get(kind, try id(outputs))
    }

    func get(_ kind: Capabilities.ResourceKind, _ id: String) throws -> JSON {
        let ops = try ops(kind)
        let (_, outputs) = try invoke(try bound(ops.get, "\(kind.rawValue) get"), id: id)
        return resource(kind, id: id, outputs, schema: ops.schema)
    }

    func replace(_ kind: Capabilities.ResourceKind, _ id: String, _ resource: JSON) throws -> JSON {
        let ops = try ops(kind)
        _ = try invoke(try bound(ops.replace, "\(kind.rawValue) replace"), resource: resource, id: id)
        return try get(kind, id)
    }

    func delete(_ kind: Capabilities.ResourceKind, _ id: String) throws {
        _ = try invoke(try bound(try ops(kind).delete, "\(kind.rawValue) delete"), id: id)
    }

    /// `<attribute> eq "x"` by the manifest's `find` for it (one resource or none); anything
    /// else by `list`, every resource, for the agent to filter, sort and page.
    func search(_ kind: Capabilities.ResourceKind, _ query: Query) throws -> SearchResult {
        let ops = try ops(kind)
        if case .compare(let path, .eq, .string(let value))? = query.filter,
            let find = ops.find.first(where: { ops.schema.canonical($0.attribute) == ops.schema.canonical(path) }) {
            do {
                let (_, outputs) = try invoke(try bound(find.function, "find"), value: value)
                return SearchResult(resources: [try get(kind, try id(outputs))], filtered: true)
            } catch let e as SCIMError where e.status == 404 {
                return SearchResult(resources: [], filtered: true)
            }
        }
        guard let list = ops.list else { throw SCIMError(status: 400, scimType: .invalidFilter, detail: "the manifest can only find \(kind.rawValue)s by \(ops.find.map { "\($0.attribute)" }.joined(separator: ", ")) eq") }
        let f = try bound(list.function, "list")
        var position: Int64 = 0
        var ids: [String] = []
        while true {
            let (ended, outputs) = try invoke(f, state: &position, end: list.end)
            if ended { break }
            ids.append(try id(outputs))
        }
        return SearchResult(resources: try ids.compactMap { id in
            do { return try get(kind, id) } catch let e as SCIMError where e.status == 404 { return nil }  // gone meanwhile
        }, filtered: false)
    }

    public func createUser(_ resource: JSON) throws -> JSON { try create(.user, resource) }
    public func getUser(id: String) throws -> JSON { try get(.user, id) }
    public func replaceUser(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON {
        if let expected {
            // No conditional write in such a library: compared here, between calls the agent
            // makes one at a time, which holds within one agent only (README).
            guard ResourceVersion.unchanged(try get(.user, id), since: expected) else { throw SCIMError.changed("user \(id) changed since it was read") }
        }
        return try replace(.user, id, resource)
    }
    public func deleteUser(id: String) throws { try delete(.user, id) }
    public func searchUsers(_ query: Query) throws -> SearchResult { try search(.user, query) }
    public func createGroup(_ resource: JSON) throws -> JSON { try create(.group, resource) }
    public func getGroup(id: String) throws -> JSON { try get(.group, id) }
    public func replaceGroup(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON { try replace(.group, id, resource) }
    public func deleteGroup(id: String) throws { try delete(.group, id) }
    public func searchGroups(_ query: Query) throws -> SearchResult { try search(.group, query) }
}
