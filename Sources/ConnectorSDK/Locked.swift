#if canImport(Glibc)
import Glibc
#endif

/// A value behind a mutex, for connector state shared by concurrent calls.
public final class Locked<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched while `mutex` is held. The mutex is allocated, so
    // its address stays put (`&` of a stored property gives pthread no stable address).
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
