import SCIMKit

/// What an app's requests go to: a connector instance loaded in-process, or a remote SCIM
/// server. Each target runs its own calls where they belong: a connector instance on the
/// connector thread pool (or inline, for a connector that never blocks), a remote over
/// AsyncHTTPClient without holding a thread.
public protocol Target: AnyObject, Sendable {
    /// For messages: "connector flatfile", "remote http://…".
    var description: String { get }
    var name: String { get }
    var version: String { get }
    func create(_ kind: Capabilities.ResourceKind, _ resource: JSON) async throws(SCIMError) -> JSON
    func get(_ kind: Capabilities.ResourceKind, _ id: String) async throws(SCIMError) -> JSON
    /// With `expected` (the resource as `get` returned it), only if the target still holds that
    /// version, else a 412 `SCIMError`; only asked of a target whose capabilities have
    /// `.conditionalReplace`.
    func replace(_ kind: Capabilities.ResourceKind, _ id: String, _ resource: JSON, ifUnchanged expected: JSON?) async throws(SCIMError) -> JSON
    func patch(_ kind: Capabilities.ResourceKind, _ id: String, _ patch: PatchRequest) async throws(SCIMError) -> JSON
    func delete(_ kind: Capabilities.ResourceKind, _ id: String) async throws(SCIMError)
    func search(_ kind: Capabilities.ResourceKind, _ query: Query) async throws(SCIMError) -> SearchResult
    func changeMembers(_ groupID: String, _ members: [JSON], add: Bool) async throws(SCIMError)
    func test() async throws(SCIMError) -> String
}
