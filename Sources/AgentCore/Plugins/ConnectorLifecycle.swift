/// The load / swap / drain / retire rules for one connector name, without I/O: the registry
/// feeds it events and carries out the actions it returns (DESIGN.md, "Hot reload").
///
/// - A file with the serving generation's content hash is ignored; any other content is loaded.
/// - A second file providing a connector name that another file serves is refused.
/// - A replacement must open and pass `test` for every app, or it is discarded and the serving
///   generation keeps serving; a first load serves the apps that opened.
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
        /// Close a new generation that will not serve, for the reason given.
        case discard(Int, String)
    }

    /// What to do with a build of this connector, once its file is loaded.
    public enum Admission: Sendable, Equatable {
        /// Open its instances; `test`: a replacement, which must prove itself first.
        case open(test: Bool)
        /// Another file serves this connector: refuse this one.
        case duplicate(of: String)
    }

    /// The plugin file that provides this connector.
    public private(set) var file: String?
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

    /// Whether `file` with this content is what serves already (nothing to load).
    public func serves(file: String, contentHash: String) -> Bool {
        self.file == file && !shouldLoad(contentHash: contentHash)
    }

    /// A build of this connector was loaded from `file`.
    public func admit(file: String) -> Admission {
        if let current = self.file, current != file, !fileRemoved, serving != nil { return .duplicate(of: current) }
        return .open(test: serving != nil)
    }

    /// A build from `file` opened as generation `number`; `openErrors` names the apps it
    /// could not serve (empty when all opened). A replacement with errors is discarded.
    public mutating func opened(number: Int, contentHash: String, file: String, openErrors: String) -> Action {
        if serving != nil && !openErrors.isEmpty {
            let reason = "new build not loaded: " + openErrors
            lastError = reason
            return .discard(number, reason)
        }
        self.file = file
        let action = loaded(number: number, contentHash: contentHash)
        if !openErrors.isEmpty { lastError = openErrors }  // serving the apps that opened
        return action
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
