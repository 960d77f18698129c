/// The load / swap / drain / retire rules for one connector name, without I/O: the registry
/// feeds it events and carries out the actions it returns (DESIGN.md, "Hot reload").
///
/// - A file with the serving generation's content hash is ignored; any other content is loaded.
/// - A loaded generation becomes the serving one at once; the one it replaces drains, and is
///   retired when its last leased call returns (at once if none is in flight).
/// - A failed load changes nothing but `lastError`: the serving generation keeps serving.
/// - A removed file changes nothing but `fileRemoved`: nothing goes dark by mistake.
public struct ConnectorLifecycle: Sendable, Equatable {
    public enum State: String, Sendable { case serving, draining, retired }

    public struct Generation: Sendable, Equatable {
        public var number: Int
        public var contentHash: String
        public var state: State
        public var inFlight: Int
    }

    public enum Action: Sendable, Equatable {
        case none
        /// Close the generation's instances (and unload its library if allowed).
        case retire(Int)
    }

    public private(set) var serving: Int?
    public private(set) var generations: [Int: Generation] = [:]
    public private(set) var fileRemoved = false
    public private(set) var lastError: String?

    public init() {}

    public var draining: [Int] { generations.values.filter { $0.state == .draining }.map(\.number).sorted() }

    /// A plugin file appeared or changed: whether to load it.
    public func shouldLoad(contentHash: String) -> Bool {
        guard let serving else { return true }
        return generations[serving]?.contentHash != contentHash
    }

    /// A new generation opened its instances and passed its test.
    public mutating func loaded(number: Int, contentHash: String) -> Action {
        var action = Action.none
        if let old = serving, var g = generations[old] {
            g.state = .draining
            generations[old] = g
            if g.inFlight == 0 { action = .retire(old) }
        }
        generations[number] = Generation(number: number, contentHash: contentHash, state: .serving, inFlight: 0)
        serving = number
        fileRemoved = false
        lastError = nil
        return action
    }

    /// A load or its check failed: the serving generation keeps serving.
    public mutating func loadFailed(_ error: String) { lastError = error }

    /// The serving generation's open failed for some apps; it serves the others.
    public mutating func degraded(_ error: String) { lastError = error }

    public mutating func fileWasRemoved() { fileRemoved = true }

    /// A request takes a lease on the serving generation.
    public mutating func acquire() -> Int? {
        guard let serving, var g = generations[serving] else { return nil }
        g.inFlight += 1
        generations[serving] = g
        return serving
    }

    /// A leased call returned.
    public mutating func release(_ number: Int) -> Action {
        guard var g = generations[number] else { return .none }
        g.inFlight -= 1
        generations[number] = g
        return g.state == .draining && g.inFlight == 0 ? .retire(number) : .none
    }

    /// The registry closed a retired generation.
    public mutating func retired(_ number: Int) {
        generations[number] = nil
    }
}
