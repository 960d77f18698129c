#if canImport(Glibc)
import Glibc
#endif
import SCIMKit

/// Group commit for blocking connector calls: concurrent callers' items are written together,
/// by one of them, in one round trip to the target (a multi-row INSERT, say), and each caller
/// gets its own item's outcome back.
///
/// A caller that finds fewer than `maxConcurrent` batches running leads one at once: it takes
/// its own item and whatever is queued (at most `maxBatch` items), runs `write` outside the
/// lock and hands out the outcomes. Otherwise it queues and sleeps until a leader has written
/// its item or hands the lead to it. Batches grow by themselves while the target is slow and
/// stay at one item when it is idle: no timer, no added latency. Each waiter is woken alone,
/// when its own outcome is ready.
public final class GroupCommit<Item, Output>: @unchecked Sendable {
    // @unchecked: `queue` and `running` (and each waiter's fields) are only touched while `mutex` is held.
    public typealias Write = ([Item]) -> [Result<Output, any Error>]

    private let maxBatch: Int
    private let maxConcurrent: Int
    private let write: Write
    private var mutex = pthread_mutex_t()
    private var queue: [Waiter] = []
    private var running = 0

    private final class Waiter {
        let item: Item
        var outcome: Result<Output, any Error>?
        var leads = false
        var wake = pthread_cond_t()
        init(_ item: Item) { self.item = item; pthread_cond_init(&wake, nil) }
        deinit { pthread_cond_destroy(&wake) }
    }

    /// `write` gets the items of one batch and returns one outcome per item, in order.
    public init(maxBatch: Int, maxConcurrent: Int = 1, write: @escaping Write) {
        self.maxBatch = max(1, maxBatch)
        self.maxConcurrent = max(1, maxConcurrent)
        self.write = write
        pthread_mutex_init(&mutex, nil)
    }

    deinit { pthread_mutex_destroy(&mutex) }

    public func submit(_ item: Item) throws -> Output {
        let me = Waiter(item)
        pthread_mutex_lock(&mutex)
        if running < maxConcurrent {
            running += 1
            me.leads = true
        } else {
            queue.append(me)
            while me.outcome == nil && !me.leads { pthread_cond_wait(&me.wake, &mutex) }
        }
        if me.leads { lead(me) }
        let outcome = me.outcome!
        pthread_mutex_unlock(&mutex)
        return try outcome.get()
    }

    /// Writes one batch starting with the leader's own item, then hands the lead to the next
    /// queued caller, if any. Entered and left with `mutex` held.
    private func lead(_ leader: Waiter) {
        let more = min(queue.count, maxBatch - 1)
        let batch = [leader] + queue.prefix(more)
        queue.removeFirst(more)
        pthread_mutex_unlock(&mutex)

        var results = write(batch.map(\.item))
        if results.count != batch.count {
            let bug = SCIMError(status: 500, detail: "group commit: \(results.count) outcomes for \(batch.count) items")
            results = Array(repeating: .failure(bug), count: batch.count)
        }

        pthread_mutex_lock(&mutex)
        for (waiter, result) in zip(batch, results) {
            waiter.outcome = result
            if waiter !== leader { pthread_cond_signal(&waiter.wake) }
        }
        if queue.isEmpty {
            running -= 1
        } else {
            let next = queue.removeFirst()
            next.leads = true
            pthread_cond_signal(&next.wake)
        }
    }
}
