#if canImport(Glibc)
import Glibc
#endif

/// Up to `size` connections to a target, lent to one caller at a time. A caller waits for a
/// free one; a connection the caller marks as broken is dropped, with every idle one (after a
/// restart of the server they are all dead), and the next caller connects anew, so a
/// connector recovers from a restart of its server by itself.
public final class ConnectionPool<Connection: AnyObject>: @unchecked Sendable {
    // @unchecked: `idle` and `open` are only touched while `mutex` is held.
    private let size: Int
    private let connect: () throws -> Connection
    private let isBroken: (Connection) -> Bool
    // Allocated, so their addresses stay put: `&` of a stored property gives pthread no
    // stable address.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let available = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var idle: [Connection] = []
    private var open = 0

    public init(size: Int, connect: @escaping () throws -> Connection, isBroken: @escaping (Connection) -> Bool) {
        self.size = max(1, size)
        self.connect = connect
        self.isBroken = isBroken
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(available, nil)
    }

    deinit {
        pthread_cond_destroy(available)
        pthread_mutex_destroy(mutex)
        available.deallocate()
        mutex.deallocate()
    }

    /// `idempotent`: `body` may run twice (a read). If it fails on an idle connection that
    /// turns out broken (its server restarted since), it runs again on a new connection, so
    /// that a restart the server is already back from costs the client nothing.
    public func withConnection<T>(idempotent: Bool = false, _ body: (Connection) throws -> T) throws -> T {
        let (connection, reused) = try take()
        do {
            defer { giveBack(connection) }
            return try body(connection)
        } catch where idempotent && reused && isBroken(connection) {
            let (fresh, _) = try take()
            defer { giveBack(fresh) }
            return try body(fresh)
        }
    }

    /// A connection: an idle one, or a new one when none is idle and fewer than `size` are open.
    private func take() throws -> (Connection, reused: Bool) {
        pthread_mutex_lock(mutex)
        while idle.isEmpty && open >= size { pthread_cond_wait(available, mutex) }
        let reused = idle.popLast()
        if reused == nil { open += 1 }
        pthread_mutex_unlock(mutex)
        if let reused { return (reused, true) }
        do { return (try connect(), false) } catch {
            giveBack(nil)
            throw error
        }
    }

    /// Returns a connection (nil: one that never opened) and wakes waiting callers. A broken
    /// one takes the idle ones with it.
    private func giveBack(_ connection: Connection?) {
        pthread_mutex_lock(mutex)
        if let connection, !isBroken(connection) {
            idle.append(connection)
        } else {
            open -= 1
            if connection != nil {
                open -= idle.count
                idle.removeAll()
            }
        }
        pthread_cond_broadcast(available)
        pthread_mutex_unlock(mutex)
    }

    /// Drops the idle connections (at close).
    public func closeAll() {
        pthread_mutex_lock(mutex)
        idle.removeAll()
        pthread_mutex_unlock(mutex)
    }
}
