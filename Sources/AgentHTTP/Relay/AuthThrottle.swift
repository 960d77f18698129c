import NIOConcurrencyHelpers

/// Slows and then refuses guessing of an app's client credentials at the relay.
///
/// Failures are counted per source address and presented credential (the basic username,
/// or the header's name for a token), never per app: an attacker elsewhere cannot lock the
/// real IdP out, and a correct credential resets its count. The first `free` failures are
/// answered at once, the next after a delay doubling from 250 ms to 4 s, and from `lockAfter`
/// on every attempt of that key is answered 429 for `lockSeconds`, correct or not.
final class AuthThrottle: Sendable {
    struct Key: Hashable, Sendable {
        var address: String
        var credential: String
    }

    enum Verdict: Equatable, Sendable {
        case allow
        case locked(retryAfter: Int)
    }

    let free = 3
    let lockAfter = 10
    let lockSeconds = 60
    /// Failures older than this are forgotten.
    let forgetAfter = Duration.seconds(900)
    /// Keys remembered at once; the oldest are forgotten first.
    let capacity = 10_000

    private struct Entry {
        var failures = 0
        var last = ContinuousClock.now
        var lockedUntil: ContinuousClock.Instant?
    }

    private let table = NIOLockedValueBox([Key: Entry]())

    func verdict(_ key: Key) -> Verdict {
        table.withLockedValue { t in
            guard let until = t[key]?.lockedUntil else { return .allow }
            let left = until - .now
            if left <= .zero {
                t[key] = nil
                return .allow
            }
            return .locked(retryAfter: max(1, Int(left.components.seconds) + 1))
        }
    }

    /// Records a failure; returns how long to hold its 401 back.
    func failed(_ key: Key) -> Duration {
        table.withLockedValue { t in
            let now = ContinuousClock.now
            if t.count >= capacity, t[key] == nil {
                t = t.filter { now - $0.value.last < forgetAfter }
                if t.count >= capacity, let oldest = t.min(by: { $0.value.last < $1.value.last })?.key { t[oldest] = nil }
            }
            var e = t[key] ?? Entry()
            if now - e.last > forgetAfter { e = Entry() }
            e.failures += 1
            e.last = now
            if e.failures >= lockAfter { e.lockedUntil = now + .seconds(lockSeconds) }
            t[key] = e
            guard e.failures > free else { return .zero }
            return .milliseconds(min(4000, 250 << min(4, e.failures - free - 1)))
        }
    }

    func succeeded(_ key: Key) {
        _ = table.withLockedValue { $0.removeValue(forKey: key) }
    }
}
