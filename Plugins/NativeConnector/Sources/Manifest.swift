import ConnectorSDK
import Foundation
import Yams

/// A C library described for the `native` connector: its functions, what each argument is
/// made from, what results mean and where outputs go. Read from YAML and checked whole:
/// every problem is reported with the file and the key path (`users.create.arguments[3].type`).
struct Manifest {
    var file: String
    var library: String
    var open: Function?
    var close: Function?
    var errorText: Function?
    var results: Results
    var users: Operations?
    var groups: Operations?

    /// Every function the manifest names.
    var functions: [Function] {
        var all = [open, close, errorText].compactMap { $0 }
        for ops in [users, groups].compactMap({ $0 }) {
            all += [ops.create, ops.get, ops.replace, ops.delete].compactMap { $0 } + ops.find.map { $0.function } + [ops.list?.function].compactMap { $0 }
        }
        return all
    }

    struct Operations {
        var create: Function?
        var get: Function?
        var replace: Function?
        var delete: Function?
        /// Searches answered by one call: the filter `<attribute> eq "value"`.
        var find: [(attribute: AttributePath, function: Function)] = []
        /// Every resource, one id per call, until the result is `end`.
        var list: (function: Function, end: Int64)?
        var schema: ResourceSchema
    }

    struct Function {
        var key: String  // its key path, for errors
        var name: String
        var arguments: [Argument]
        var results: Results?
    }

    struct Argument {
        var key: String
        var type: CType
        var source: Source
    }

    enum Source {
        case handle
        /// A SCIM attribute of the resource (absent: `fallback`, else NULL or 0).
        case attribute(AttributePath, fallback: JSON?)
        case id
        /// The value a `find` searches for.
        case filterValue
        case setting(String)
        case constant(JSON)
        /// An output buffer of `size` bytes, read back into this target.
        case buffer(size: Int, to: Target)
        /// An output scalar (`int32*`), read back into this target.
        case output(Target)
        /// The size of the buffer that goes to this target.
        case lengthOf(Target)
        /// A list's iteration state, starting at 0 and kept between its calls.
        case state
    }

    enum Target: Hashable {
        case id
        case attribute(AttributePath)
    }

    /// What a function's int result means: an outcome per value, and one for all others.
    struct Results {
        var outcomes: [Int64: Int]  // 0: success; else an HTTP status
        var otherwise: Int

        func status(_ result: Int64) -> Int { outcomes[result] ?? otherwise }
    }

    /// The C types a manifest may name.
    enum CType: String, CaseIterable {
        case int8, uint8, int16, uint16, int32, uint32, int64, uint64, size_t, double, bool
        case string, buffer, handle
        case int32Out = "int32*", int64Out = "int64*", doubleOut = "double*", boolOut = "bool*"

        var isOutput: Bool { [.int32Out, .int64Out, .doubleOut, .boolOut].contains(self) }
    }
}

/// The problems found in a manifest, all of them, each naming the file and the key path.
struct ManifestProblems: Error, CustomStringConvertible {
    var problems: [String]
    var description: String { problems.joined(separator: "; ") }
}

extension Manifest {
    /// Reads and checks the manifest at `path`.
    static func load(_ path: String) throws(ManifestProblems) -> Manifest {
        let name = (path as NSString).lastPathComponent
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ManifestProblems(problems: ["\(path): cannot read the manifest"])
        }
        let root: JSON
        do {
            guard let node = try Yams.compose(yaml: text, .basic) else { throw ManifestProblems(problems: ["\(name): the manifest is empty"]) }
            root = try json(node, at: "", file: name)
        } catch let problems as ManifestProblems {
            throw problems
        } catch {
            throw ManifestProblems(problems: ["\(name): not valid YAML: \(error)"])
        }
        var reader = ManifestReader(file: name)
        let manifest = reader.read(root, path: path)
        guard reader.problems.isEmpty, let manifest else { throw ManifestProblems(problems: reader.problems) }
        return manifest
    }

    /// A YAML node as JSON; a mapping key that is not a plain scalar is a problem (Yams
    /// would trap on it).
    static func json(_ node: Node, at path: String, file: String) throws(ManifestProblems) -> JSON {
        switch node {
        case .mapping(let mapping):
            var o = JSONObject()
            for (key, value) in mapping {
                guard case .scalar(let k) = key else { throw ManifestProblems(problems: ["\(file): \(path.isEmpty ? "a key" : "a key under \(path)") must be a plain string"]) }
                o[k.string] = try json(value, at: path.isEmpty ? k.string : path + "." + k.string, file: file)
            }
            return .object(o)
        case .sequence(let sequence):
            var out: [JSON] = []
            for (i, value) in sequence.enumerated() { out.append(try json(value, at: "\(path)[\(i)]", file: file)) }
            return .array(out)
        case .scalar(let scalar):
            guard scalar.style == .plain else { return .string(scalar.string) }
            if let n = Int64(scalar.string) { return .number(Double(n)) }
            if ["true", "false"].contains(scalar.string) { return .bool(scalar.string == "true") }
            if ["null", "~", ""].contains(scalar.string) { return .null }
            return .string(scalar.string)
        case .alias:
            throw ManifestProblems(problems: ["\(file): \(path): aliases are not supported"])
        }
    }
}

/// Reads a manifest's JSON into a `Manifest`, collecting every problem.
struct ManifestReader {
    let file: String
    var problems: [String] = []

    mutating func problem(_ key: String, _ text: String) { problems.append("\(file): \(key): \(text)") }

    mutating func read(_ root: JSON, path: String) -> Manifest? {
        guard case .object(let o) = root else { problem("(top)", "must be a mapping"); return nil }
        let known = ["library", "open", "close", "errorText", "results", "users", "groups"]
        for k in o.members.map(\.key) where !known.contains(k) { problem(k, "unknown key (known: \(known.joined(separator: ", ")))") }
        guard let library = o["library"]?.stringValue, !library.isEmpty else {
            problem("library", "missing: the library's path (relative to the manifest) or soname")
            return nil
        }
        var results: Manifest.Results?
        if let r = o["results"] { results = readResults(r, key: "results") } else { problem("results", "missing: what the functions' results mean (0: ok, … otherwise: 500)") }
        var m = Manifest(file: path, library: library, results: results ?? Manifest.Results(outcomes: [0: 0], otherwise: 500))
        if let f = o["open"] { m.open = function(f, key: "open", kind: .open) }
        if let f = o["close"] { m.close = function(f, key: "close", kind: .handleOnly) }
        if let f = o["errorText"] { m.errorText = function(f, key: "errorText", kind: .handleOnly) }
        if let users = o["users"] { m.users = operations(users, key: "users", schema: CoreSchemas.userResource) }
        if let groups = o["groups"] { m.groups = operations(groups, key: "groups", schema: CoreSchemas.groupResource) }
        if m.users == nil && m.groups == nil && o["users"] == nil && o["groups"] == nil { problem("users", "missing: map at least one operation of users or groups") }
        // A handle passed with nothing to open it would be NULL to the library.
        if o["open"] == nil {
            for f in m.functions {
                for a in f.arguments where a.type == .handle { problem(a.key, "a handle, but no open: says how to get one") }
            }
        }
        return m
    }

    mutating func readResults(_ value: JSON, key: String) -> Manifest.Results? {
        guard case .object(let o) = value else { problem(key, "must be a mapping of results to ok or an HTTP status"); return nil }
        var outcomes: [Int64: Int] = [:]
        var otherwise: Int?
        for member in o.members {
            let k = "\(key).\(member.key)"
            let outcome: Int?
            switch member.value {
            case .string("ok"): outcome = 0
            case .number(let n) where n == n.rounded() && (400...599).contains(Int(n)): outcome = Int(n)
            default: outcome = nil; problem(k, "must be ok or an HTTP status from 400 to 599")
            }
            if member.key == "otherwise" {
                otherwise = outcome
            } else if let result = Int64(member.key) {
                if let outcome { outcomes[result] = outcome }
            } else {
                problem(k, "a result must be an integer, or otherwise")
            }
        }
        guard let otherwise else {
            problem(key, "not total: add otherwise: (the HTTP status of every result not listed)")
            return nil
        }
        if !outcomes.values.contains(0) && otherwise != 0 { problem(key, "no result means ok") }
        return Manifest.Results(outcomes: outcomes, otherwise: otherwise)
    }

    enum FunctionKind { case open, handleOnly, create, get, replace, delete, find, list }

    mutating func operations(_ value: JSON, key: String, schema: ResourceSchema) -> Manifest.Operations? {
        guard case .object(let o) = value else { problem(key, "must be a mapping of operations (create, get, replace, delete, search)"); return nil }
        var ops = Manifest.Operations(schema: schema)
        for member in o.members {
            let k = "\(key).\(member.key)"
            switch member.key {
            case "create": ops.create = function(member.value, key: k, kind: .create, schema: schema)
            case "get": ops.get = function(member.value, key: k, kind: .get, schema: schema)
            case "replace": ops.replace = function(member.value, key: k, kind: .replace, schema: schema)
            case "delete": ops.delete = function(member.value, key: k, kind: .delete, schema: schema)
            case "search": search(member.value, key: k, into: &ops)
            default: problem(k, "unknown operation (known: create, get, replace, delete, search)")
            }
        }
        if (ops.create != nil || ops.replace != nil || !ops.find.isEmpty || ops.list != nil) && ops.get == nil {
            problem("\(key).get", "missing: create, replace and search read the resource back with get")
        }
        return ops
    }

    mutating func search(_ value: JSON, key: String, into ops: inout Manifest.Operations) {
        guard case .object(let o) = value else { problem(key, "must be a mapping with find and/or list"); return }
        for member in o.members where !["find", "list"].contains(member.key) { problem("\(key).\(member.key)", "unknown key (known: find, list)") }
        if case .object(let finds)? = o["find"] {
            for member in finds.members {
                let k = "\(key).find.\(member.key)"
                guard let path = AttributePath(parsing: member.key), ops.schema.definition(for: path) != nil else {
                    problem(k, "\(member.key) is not an attribute of \(ops.schema.core.name)")
                    continue
                }
                if let f = function(member.value, key: k, kind: .find, schema: ops.schema) { ops.find.append((path, f)) }
            }
        } else if o["find"] != nil {
            problem("\(key).find", "must be a mapping of attribute to function")
        }
        if let list = o["list"] {
            guard let end = list["end"]?.intValue else { problem("\(key).list.end", "missing: the result that means no more"); return }
            if let f = function(list, key: "\(key).list", kind: .list, schema: ops.schema, extraKeys: ["end"]) { ops.list = (f, Int64(end)) }
        }
    }

    mutating func function(_ value: JSON, key: String, kind: FunctionKind, schema: ResourceSchema? = nil, extraKeys: [String] = []) -> Manifest.Function? {
        guard case .object(let o) = value else { problem(key, "must be a mapping with function and arguments"); return nil }
        for k in o.members.map(\.key) where !(["function", "arguments", "results"] + extraKeys).contains(k) { problem("\(key).\(k)", "unknown key") }
        guard let name = o["function"]?.stringValue, !name.isEmpty else { problem("\(key).function", "missing: the C function's name"); return nil }
        var arguments: [Manifest.Argument] = []
        if case .array(let list)? = o["arguments"] {
            for (i, a) in list.enumerated() {
                if let arg = argument(a, key: "\(key).arguments[\(i)]", kind: kind, schema: schema) { arguments.append(arg) }
            }
        } else if o["arguments"] != nil {
            problem("\(key).arguments", "must be a list")
        } else if kind == .handleOnly {
            arguments = [Manifest.Argument(key: "\(key).arguments[0]", type: .handle, source: .handle)]
        }
        // Each buffer's length argument names a buffer of the same function.
        let buffers = arguments.compactMap { a -> Manifest.Target? in if case .buffer(_, let t) = a.source { return t } else { return nil } }
        for a in arguments {
            if case .lengthOf(let t) = a.source, !buffers.contains(t) { problem(a.key + ".lengthOf", "no buffer of this function goes to \(t)") }
        }
        let outputsID = arguments.contains { a in
            switch a.source {
            case .buffer(_, .id), .output(.id): true
            default: false
            }
        }
        switch kind {
        case .create, .find, .list:
            if !outputsID { problem("\(key).arguments", "no argument gives the id (an output with to: id)") }
        case .get, .replace, .delete:
            if !arguments.contains(where: { if case .id = $0.source { true } else { false } }) { problem("\(key).arguments", "no argument is the id (from: id)") }
        default: break
        }
        if kind == .find && !arguments.contains(where: { if case .filterValue = $0.source { true } else { false } }) {
            problem("\(key).arguments", "no argument is the value searched for (from: value)")
        }
        if kind == .list && !arguments.contains(where: { if case .state = $0.source { true } else { false } }) {
            problem("\(key).arguments", "no argument keeps the position (state: position, of type int64*)")
        }
        var results: Manifest.Results?
        if let r = o["results"] { results = readResults(r, key: "\(key).results") }
        return Manifest.Function(key: key, name: name, arguments: arguments, results: results)
    }

    mutating func argument(_ value: JSON, key: String, kind: FunctionKind, schema: ResourceSchema?) -> Manifest.Argument? {
        if value.stringValue == "handle" { return Manifest.Argument(key: key, type: .handle, source: .handle) }
        guard case .object(let o) = value else { problem(key, "must be handle or a mapping with type and from, to, value, lengthOf or state"); return nil }
        for k in o.members.map(\.key) where !["type", "from", "to", "value", "default", "size", "lengthOf", "state"].contains(k) { problem("\(key).\(k)", "unknown key") }
        guard let typeName = o["type"]?.stringValue else { problem("\(key).type", "missing"); return nil }
        guard let type = Manifest.CType(rawValue: typeName) else {
            problem("\(key).type", "unknown type \(typeName) (types: \(Manifest.CType.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        func target(_ text: String, _ k: String) -> Manifest.Target? {
            if text == "id" { return .id }
            guard let schema else { problem(k, "\(text): outputs go to id or an attribute"); return nil }
            guard let path = AttributePath(parsing: text), schema.definition(for: path) != nil else {
                problem(k, "\(text) is not an attribute of \(schema.core.name)")
                return nil
            }
            return .attribute(path)
        }
        let source: Manifest.Source
        if type == .handle {
            source = .handle
        } else if type == .buffer {
            guard let size = o["size"]?.intValue, (1...1 << 20).contains(size) else { problem("\(key).size", "missing: the buffer's size in bytes (1 to 1048576)"); return nil }
            guard let to = o["to"]?.stringValue else { problem("\(key).to", "missing: where the buffer's text goes (id or an attribute)"); return nil }
            guard let t = target(to, "\(key).to") else { return nil }
            source = .buffer(size: size, to: t)
        } else if o["state"] != nil {
            guard type == .int64Out else { problem("\(key).type", "a state is an int64*"); return nil }
            guard kind == .list else { problem("\(key).state", "only a search's list keeps a state"); return nil }
            source = .state
        } else if type.isOutput {
            guard let to = o["to"]?.stringValue else { problem("\(key).to", "missing: where the \(typeName) output goes"); return nil }
            guard let t = target(to, "\(key).to") else { return nil }
            source = .output(t)
        } else if let of = o["lengthOf"]?.stringValue {
            guard type == .size_t || type == .int32 || type == .int64 || type == .uint32 || type == .uint64 else { problem("\(key).type", "a length is size_t or an integer"); return nil }
            guard let t = target(of, "\(key).lengthOf") else { return nil }
            source = .lengthOf(t)
        } else if let constant = o["value"] {
            source = .constant(constant)
        } else if let from = o["from"]?.stringValue {
            if from == "id" {
                source = .id
            } else if from == "value" {
                guard kind == .find else { problem("\(key).from", "value (the value searched for) is only for search.find"); return nil }
                source = .filterValue
            } else if from.hasPrefix("settings.") {
                source = .setting(String(from.dropFirst("settings.".count)))
            } else {
                guard let schema, kind == .create || kind == .replace else {
                    problem("\(key).from", "\(from): here an argument comes from id\(kind == .find ? ", value" : ""), settings.<name>, a constant (value:) or the handle")
                    return nil
                }
                guard let path = AttributePath(parsing: from), schema.definition(for: path) != nil else {
                    problem("\(key).from", "\(from) is not an attribute of \(schema.core.name)")
                    return nil
                }
                source = .attribute(path, fallback: o["default"])
            }
        } else {
            problem(key, "says neither from, to, value, lengthOf nor state")
            return nil
        }
        if case .buffer = source {} else if type == .string, case .output = source { problem("\(key).type", "an output string is a buffer") }
        return Manifest.Argument(key: key, type: type, source: source)
    }
}
