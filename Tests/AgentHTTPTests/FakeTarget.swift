import AgentCore
import Foundation
import SCIMKit
import Synchronization

/// A target that keeps resources in a dictionary: what the route and service tests run
/// against, so HTTP behaviour is checked without a plugin or a server. `replace(ifUnchanged:)`
/// compares like a connector's `replace_if`; `calls` records what reached the target.
final class FakeTarget: Target {
    typealias Kind = Capabilities.ResourceKind
    private let store = Mutex<[String: JSON]>([:])
    private let log = Mutex<[String]>([])
    private let nextID = Atomic<Int>(0)

    var description: String { "fake target" }
    var name: String { "fake" }
    var version: String { "1" }

    static let capabilities = Capabilities(
        users: .init(operations: [.create, .get, .replace, .delete, .search, .conditionalReplace], schema: CoreSchemas.userResource,
                     passwordWritable: true, activeWritable: true),
        groups: .init(operations: [.create, .get, .replace, .delete, .search, .conditionalReplace], schema: CoreSchemas.groupResource))

    var calls: [String] { log.withLock { $0 } }
    func stored(_ kind: Kind, _ id: String) -> JSON? { store.withLock { $0[kind.rawValue + "/" + id] } }

    private func record(_ call: String) { log.withLock { $0.append(call) } }

    func create(_ kind: Kind, _ resource: JSON) async throws(SCIMError) -> JSON {
        record("create")
        let id = "id-\(nextID.add(1, ordering: .relaxed).newValue)"
        var r = resource
        r["id"] = .string(id)
        let stored = r
        return try store.withLock { (s: inout [String: JSON]) throws(SCIMError) -> JSON in
            if s.values.contains(where: { $0["userName"] != nil && $0["userName"] == stored["userName"] }) {
                throw SCIMError(status: 409, scimType: .uniqueness, detail: "userName taken")
            }
            s[kind.rawValue + "/" + id] = stored
            return stored
        }
    }

    func get(_ kind: Kind, _ id: String) async throws(SCIMError) -> JSON {
        record("get")
        guard let r = stored(kind, id) else { throw .notFound("\(kind.rawValue) \(id) not found") }
        return r
    }

    func replace(_ kind: Kind, _ id: String, _ resource: JSON, ifUnchanged expected: JSON?) async throws(SCIMError) -> JSON {
        record(expected == nil ? "replace" : "replace_if")
        var r = resource
        r["id"] = .string(id)
        let new = r
        return try store.withLock { (s: inout [String: JSON]) throws(SCIMError) -> JSON in
            guard let current = s[kind.rawValue + "/" + id] else { throw .notFound("\(kind.rawValue) \(id) not found") }
            if let expected, current != expected { throw SCIMError(status: 412, detail: "changed") }
            s[kind.rawValue + "/" + id] = new
            return new
        }
    }

    func patch(_ kind: Kind, _ id: String, _ patch: PatchRequest) async throws(SCIMError) -> JSON {
        throw .notImplemented("no patch")
    }

    func delete(_ kind: Kind, _ id: String) async throws(SCIMError) {
        record("delete")
        guard store.withLock({ $0.removeValue(forKey: kind.rawValue + "/" + id) }) != nil else { throw .notFound("\(kind.rawValue) \(id) not found") }
    }

    func search(_ kind: Kind, _ query: Query) async throws(SCIMError) -> SearchResult {
        record("search")
        let all = store.withLock { s in s.filter { $0.key.hasPrefix(kind.rawValue + "/") }.sorted { $0.key < $1.key }.map(\.value) }
        return SearchResult(resources: all, filtered: false)
    }

    func changeMembers(_ groupID: String, _ members: [JSON], add: Bool) async throws(SCIMError) {
        throw .notImplemented("no member deltas")
    }

    func test() async throws(SCIMError) -> String { "fake ok" }
}
