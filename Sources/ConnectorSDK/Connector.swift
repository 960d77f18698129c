@_exported import SCIMKit

/// A connector: one instance per app, opened with the app's `settings`.
///
/// Operations are separate protocols (`UserCreating`, `UserSearching`, …). Conform to the ones
/// the target really supports: the agent advertises exactly those, and answers the others with
/// 501 itself. Methods are synchronous and may block; the agent calls them from worker threads.
/// Throw `SCIMError` to fail with a status, scimType and detail; any other error becomes 500.
public protocol Connector: AnyObject {
    /// The name apps use in `connector:`.
    static var name: String { get }
    static var version: String { get }
    /// Whether one instance may take calls from several threads at once.
    static var isConcurrent: Bool { get }

    init(settings: JSON, host: ConnectorHost) throws
    /// Checks that the target is reachable and usable; returns a short message.
    func test() throws -> String
    /// Fine-grained capabilities (see `scim_connector.h`, `describe`).
    func describe() -> JSON
    /// Called once when the agent closes the instance.
    func close()
}

extension Connector {
    public static var isConcurrent: Bool { false }
    public func test() throws -> String { "ok" }
    public func describe() -> JSON { [:] }
    public func close() {}
}

public protocol UserCreating: Connector { func createUser(_ resource: JSON) throws -> JSON }
/// Creates several users in one go (one statement, one commit). The agent then sends every
/// user create here: the creates that arrive while one call runs go together in the next, so a
/// batch grows with the load. Each user succeeds or fails on its own; return one outcome per
/// resource, in order. A single `createUser` comes for free.
public protocol UserBatchCreating: UserCreating {
    func createUsers(_ resources: [JSON]) -> [Result<JSON, any Error>]
}

extension UserBatchCreating {
    public func createUser(_ resource: JSON) throws -> JSON {
        guard let outcome = createUsers([resource]).first else { throw SCIMError(status: 500, detail: "createUsers returned no outcome") }
        return try outcome.get()
    }
}
public protocol UserReading: Connector { func getUser(id: String) throws -> JSON }
/// Replaces a user. With `expected` (the user as `getUser` returned it when the agent read it)
/// the replace is conditional: check that the stored user is still that version and write it
/// as one atomic step (under your lock, in one transaction, or as a conditional write the target
/// offers), or throw `SCIMError.changed` and write nothing; the agent then reads the user again
/// and retries. `ResourceVersion.unchanged` does the comparison. This is what keeps concurrent
/// PATCHes (and two agents on one target) from losing each other's changes.
public protocol UserReplacing: Connector { func replaceUser(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON }
public protocol UserPatching: Connector { func patchUser(id: String, _ patch: PatchRequest) throws -> JSON }
public protocol UserDeleting: Connector { func deleteUser(id: String) throws }
public protocol UserSearching: Connector { func searchUsers(_ query: Query) throws -> SearchResult }

public protocol GroupCreating: Connector { func createGroup(_ resource: JSON) throws -> JSON }
public protocol GroupReading: Connector { func getGroup(id: String) throws -> JSON }
/// As `UserReplacing.replaceUser`, for groups (their members included in what is compared).
public protocol GroupReplacing: Connector { func replaceGroup(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON }
public protocol GroupPatching: Connector { func patchGroup(id: String, _ patch: PatchRequest) throws -> JSON }
public protocol GroupDeleting: Connector { func deleteGroup(id: String) throws }
public protocol GroupSearching: Connector { func searchGroups(_ query: Query) throws -> SearchResult }
/// Membership changes as deltas, so adding one member never rewrites a large group.
public protocol GroupMembership: Connector {
    func addMembers(groupID: String, memberIDs: [String]) throws
    func removeMembers(groupID: String, memberIDs: [String]) throws
}


/// An error of a connector's own (a database driver's, a directory's) that knows its SCIM
/// meaning. The SDK turns it into that SCIM error where the call returns to the agent, so a
/// connector keeps its errors' causes (codes, the operation) until then, and decides on them.
public protocol SCIMErrorConvertible: Error {
    var scimError: SCIMError { get }
}
