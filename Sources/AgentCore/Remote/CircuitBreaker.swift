import Foundation

/// Per remote: after `threshold` consecutive failures, fail fast for `cooldown` seconds, then
/// let one probe through; its success closes the breaker, its failure opens it again.
/// A state machine without I/O.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case closed(failures: Int)
        case open(until: Double)
        case halfOpen
    }

    public let threshold: Int
    public let cooldown: Double
    public private(set) var state = State.closed(failures: 0)

    public init(threshold: Int = 5, cooldown: Double = 10) {
        self.threshold = threshold
        self.cooldown = cooldown
    }

    /// Whether a request may go out now; nil, or the seconds until the next probe.
    public mutating func admit(now: Double) -> Double? {
        switch state {
        case .closed: return nil
        case .halfOpen: return cooldown  // one probe at a time
        case .open(let until):
            if now >= until {
                state = .halfOpen
                return nil
            }
            return until - now
        }
    }

    public mutating func succeeded() { state = .closed(failures: 0) }

    public mutating func failed(now: Double) {
        switch state {
        case .closed(let n) where n + 1 < threshold: state = .closed(failures: n + 1)
        default: state = .open(until: now + cooldown)
        }
    }

    public var label: String {
        switch state {
        case .closed: "closed"
        case .open: "open"
        case .halfOpen: "half-open"
        }
    }
}
