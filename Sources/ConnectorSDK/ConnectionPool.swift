#if canImport(Glibc)
import Glibc
#endif

/// Up to `size` connections to a target, lent to one caller at a time. A caller waits for a
/// free one; a connection the caller marks as broken is dropped, and the next caller connects
/// anew, so a connector recovers from a restart of its server by itself.
public final class ConnectionPool<Connection: AnyObject>: @unchecked Sendable {
    // @unchecked: `idle` and `open` are only touched while `mutex` is held.
    private let size: Int
    private let connect: () throws -> Connection
    private let isBroken: (Connection) -> Bool
    private var mutex = pthread_mutex_t()
    private var available = pthread_cond_t()
    private var idle: [Connection] = []
    private var open = 0

    public init(size: Int, connect: @escaping () throws -> Connection, isBroken: @escaping (Connection) -> Bool) {
        self.size = max(1, size)
        self.connect = connect
        self.isBroken = isBroken
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&available, nil)
    }

    deinit {
        pthread_cond_destroy(&available)
        pthread_mutex_destroy(&mutex)
    }

    public func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        pthread_mutex_lock(&mutex)
        while idle.isEmpty && open >= size { pthread_cond_wait(&available, &mutex) }
        let reused = idle.popLast()
        if reused == nil { open += 1 }
        pthread_mutex_unlock(&mutex)
        let connection: Connection
        if let reused {
            connection = reused
        } else {
            do { connection = try connect() } catch {
                giveBack(nil)
                throw error
            }
        }
        defer { giveBack(connection) }
        return try body(connection)
    }

    /// Returns a connection (nil: one that never opened) and wakes a waiting caller.
    private func giveBack(_ connection: Connection?) {
        pthread_mutex_lock(&mutex)
        if let connection, !isBroken(connection) { idle.append(connection) } else { open -= 1 }
        pthread_cond_signal(&available)
        pthread_mutex_unlock(&mutex)
    }

    /// Drops the idle connections (at close).
    public func closeAll() {
        pthread_mutex_lock(&mutex)
        idle.removeAll()
        pthread_mutex_unlock(&mutex)
    }
}
