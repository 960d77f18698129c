#if canImport(Glibc)
import Glibc
#endif
import ConnectorSDK

/// Users and groups in `users.csv` and `groups.csv`, in the directory `settings.directory`.
public final class FlatFileConnector: Connector, UserCreating, UserReading, UserReplacing, UserDeleting, UserSearching,
    GroupCreating, GroupReading, GroupReplacing, GroupDeleting, GroupSearching, GroupMembership, @unchecked Sendable
{
    // @unchecked: all mutable state is inside `state` (a Mutex) or `durability` (its own Mutex).
    public static let name = "flatfile"
    public static var version: String { flatFileVersion }
    public static let isConcurrent = true

    /// Journal entries after which a write folds the journal into the CSV files.
    static let compactionThreshold = 5000

    let directory: String
    let host: ConnectorHost
    let state: Locked<Store>
    let durability = Locked(Durability())
    /// Taken on the first write, so `provisioning-agent check` can read a directory a
    /// running agent serves.
    private let lockFD = Locked<Int32?>(nil)
    private var compactor: pthread_t?
    private let stopping = Locked(false)

    struct Durability { var written = 0; var synced = 0 }

    public init(settings: JSON, host: ConnectorHost) throws {
        guard let dir = settings["directory"]?.stringValue, !dir.isEmpty else {
            throw SCIMError.invalidValue("settings.directory is missing: the directory holding users.csv and groups.csv")
        }
        let path = Self.normalize(host.path(dir))
        self.directory = path
        self.host = host
        try Self.makeDirectories(path)
        let store = try Store(directory: path, host: host)
        journals = (store.users.files, store.groups.files)
        state = Locked(store)
        startCompactor()
    }

    /// Run as root (an admin's `provisioning-agent check` on the service's directory), a file
    /// or directory it creates is given the owner of the directory it is in, so that the
    /// service, running as its own user, can still write it. Otherwise nothing changes.
    static func adoptOwner(path: String) {
        guard geteuid() == 0 else { return }
        var parent = stat()
        let dir = path.split(separator: "/").dropLast().joined(separator: "/")
        guard stat("/" + dir, &parent) == 0 else { return }
        _ = chown(path, parent.st_uid, parent.st_gid)
    }

    static func adoptOwner(fd: Int32, of directory: String) {
        guard geteuid() == 0 else { return }
        var dir = stat()
        guard stat(directory, &dir) == 0 else { return }
        _ = fchown(fd, dir.st_uid, dir.st_gid)
    }

    /// Removes `.` and `..` segments, so logs and errors show a plain path.
    static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }

    static func makeDirectories(_ path: String) throws(SCIMError) {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o750) == 0 {
                adoptOwner(path: current)
            } else if errno != EEXIST {
                throw SCIMError(status: 503, detail: "cannot create directory \(current): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// One agent per directory. POSIX record locks belong to the process, so a new plugin
    /// generation in the same agent takes the directory over, while another agent is refused.
    /// The descriptor is never closed: closing any descriptor of the file would drop the lock.
    /// A lock held by another process is waited for up to `lockWait` seconds first: an
    /// isolated app's new generation runs in a new child process, and the old child lets go
    /// of the directory when it exits, once its calls in flight have returned.
    static let lockWait = 3.0

    static func lockDirectory(_ path: String) throws(SCIMError) -> Int32 {
        let lockPath = path + "/.flatfile.lock"
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw TableFiles.ioError("cannot open", lockPath) }
        adoptOwner(fd: fd, of: path)
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        var locked = fcntl(fd, F_SETLK, &lock) == 0
        for _ in 0..<Int(lockWait * 100) where !locked {
            usleep(10_000)
            locked = fcntl(fd, F_SETLK, &lock) == 0
        }
        if !locked {
            var probe = flock()
            probe.l_type = Int16(F_WRLCK)
            _ = fcntl(fd, F_GETLK, &probe)
            throw SCIMError(status: 503, detail: "\(path) is in use by another agent (process \(probe.l_pid))")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        return fd
    }

    public func test() throws -> String {
        try state.withLock { s in
            try s.users.files.withFileLock(shared: true) { () throws(SCIMError) in try s.refresh() }
            return "\(directory): \(s.users.count) users, \(s.groups.count) groups"
        }
    }

    public func describe() -> JSON {
        [
            "users": ["sort": true, "passwordWritable": false, "activeWritable": true],
            "groups": ["sort": true],
        ]
    }

    public func close() {
        stopping.withLock { $0 = true }
        if let compactor { pthread_join(compactor, nil) }
        if isWriter { state.withLock { s in try? s.compact() } }
    }

    /// Whether this instance took the directory for writing. One that only read (`check`
    /// beside a running agent) never compacts: the files stay the serving agent's.
    var isWriter: Bool { lockFD.withLock { $0 != nil } }

    // MARK: - Writes: apply under the lock, then wait for the journal to reach the disk

    private func write<T>(_ body: (inout Store) throws -> T) throws -> T {
        try lockFD.withLock { fd in if fd == nil { fd = try Self.lockDirectory(directory) } }
        let (result, sequence) = try state.withLock { s in
            // Catching up and appending under one exclusive lock: another instance on this
            // directory never reads half a line, and never appends between the two.
            let r = try s.users.files.withFileLock { () throws(SCIMError) -> T in
                try s.refresh()
                do { return try body(&s) } catch let error as SCIMError { throw error } catch {
                    throw SCIMError(status: 500, detail: "\(error)")
                }
            }
            if s.users.files.journalEntries + s.groups.files.journalEntries >= Self.compactionThreshold { try s.compact() }
            return (r, durability.withLock { d in d.written += 1; return d.written })
        }
        try syncJournal(upTo: sequence)
        return result
    }

    /// Group commit: one fdatasync covers every write appended before it started.
    private func syncJournal(upTo sequence: Int) throws {
        if durability.withLock({ $0.synced >= sequence }) { return }
        try syncLock.withLock { _ in
            let target = durability.withLock { d -> Int? in d.synced >= sequence ? nil : d.written }
            guard let target else { return }
            try journals.users.sync()
            try journals.groups.sync()
            durability.withLock { $0.synced = max($0.synced, target) }
        }
    }
    private let syncLock = Locked(())
    private let journals: (users: TableFiles, groups: TableFiles)

    private func read<T>(_ body: (inout Store) throws -> T) throws -> T {
        try state.withLock { s in
            try s.users.files.withFileLock(shared: true) { () throws(SCIMError) in try s.refresh() }
            return try body(&s)
        }
    }

    // MARK: - Users

    public func createUser(_ resource: JSON) throws -> JSON {
        try write { s in try s.create(.user, resource) }
    }
    public func getUser(id: String) throws -> JSON {
        try read { s in try s.users.get(id) }
    }
    public func replaceUser(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON {
        try write { s in
            if let expected { try Self.check(try s.users.get(id), expected) }
            return try s.replace(.user, id, resource)
        }
    }

    /// A conditional replace's check, made under the write lock the replace holds.
    static func check(_ current: JSON, _ expected: JSON) throws(SCIMError) {
        guard ResourceVersion.unchanged(current, since: expected) else {
            throw .changed("\(current["id"]?.stringValue ?? "the resource") changed since it was read")
        }
    }
    public func deleteUser(id: String) throws {
        try write { s in try s.deleteUser(id) }
    }
    public func searchUsers(_ query: Query) throws -> SearchResult {
        try read { s in s.users.search(query, schema: CoreSchemas.userResource) }
    }

    // MARK: - Groups

    public func createGroup(_ resource: JSON) throws -> JSON {
        try write { s in s.annotated(try s.create(.group, resource)) }
    }
    public func getGroup(id: String) throws -> JSON {
        try read { s in s.annotated(try s.groups.get(id)) }
    }
    public func replaceGroup(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON {
        try write { s in
            if let expected { try Self.check(s.annotated(try s.groups.get(id)), expected) }
            return s.annotated(try s.replace(.group, id, resource))
        }
    }
    public func deleteGroup(id: String) throws {
        try write { s in try s.groups.delete(id); s.lastWrite = now() }
    }
    public func searchGroups(_ query: Query) throws -> SearchResult {
        try read { s in
            var result = s.groups.search(query, schema: CoreSchemas.groupResource)
            result.resources = result.resources.map { s.annotated($0) }
            return result
        }
    }
    public func addMembers(groupID: String, memberIDs: [String]) throws {
        try write { s in try s.changeMembers(groupID, add: memberIDs, remove: []) }
    }
    public func removeMembers(groupID: String, memberIDs: [String]) throws {
        try write { s in try s.changeMembers(groupID, add: [], remove: memberIDs) }
    }

    // MARK: - Idle compaction, so the CSV an admin opens is current

    private func startCompactor() {
        let context = Unmanaged.passUnretained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let me = Unmanaged<FlatFileConnector>.fromOpaque(arg!).takeUnretainedValue()
            me.compactWhenIdle()
            return nil
        }, context)
        if rc == 0 { compactor = thread }
    }

    private func compactWhenIdle() {
        var ticks = 0
        while !stopping.withLock({ $0 }) {
            usleep(100_000)
            ticks += 1
            guard ticks % 10 == 0, isWriter else { continue }
            state.withLock { s in
                guard s.users.files.journalEntries + s.groups.files.journalEntries > 0, s.idleSeconds() >= 1 else { return }
                do { try s.compact() } catch { host.log(.warning, "compaction of \(directory) failed: \(error)") }
            }
        }
    }
}
