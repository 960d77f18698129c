import Logging
import NIOConcurrencyHelpers
import SCIMKit
import ServiceLifecycle

/// Reads the remote apps' discovery documents: at start, for a remote new in a reloaded
/// configuration (within a second), and every `interval` after, since a remote's
/// capabilities can change. A remote that does not answer keeps what was known (the
/// defaults at first) and is tried again next time; one slow remote holds up no other, and
/// the agent serves from the start: a request to a remote not yet discovered waits for its
/// first discovery a few seconds at most (`ConnectorRegistry.withLease`).
public struct RemoteDiscoveryService: Service {
    let registry: ConnectorRegistry
    let logger: Logger
    let interval: Duration

    public init(registry: ConnectorRegistry, logger: Logger, interval: Duration = .seconds(60)) {
        self.registry = registry
        self.logger = logger
        self.interval = interval
    }

    public func run() async throws {
        var last: [ObjectIdentifier: ContinuousClock.Instant] = [:]
        await withDiscardingTaskGroup { group in
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                let now = ContinuousClock.now
                for (app, remote) in registry.remotes {
                    let key = ObjectIdentifier(remote)
                    if let at = last[key], now - at < interval { continue }
                    guard remote.startDiscovery() else { continue }  // still reading from the last round
                    last[key] = now
                    group.addTask { await discover(app, remote) }
                }
                // Woken by a graceful shutdown, which would otherwise wait out the second.
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            }
            group.cancelAll()
        }
    }

    func discover(_ app: String, _ remote: RemoteTarget) async {
        do throws(SCIMError) {
            try await remote.discover()
            logger.info("remote capabilities discovered", metadata: ["app": .string(app), "source": .string(remote.version)])
        } catch {
            logger.warning("remote discovery failed; keeping what was known", metadata: ["app": .string(app), "error": .string(error.detail)])
        }
        remote.finishDiscovery()
    }
}

/// Opens once and stays open: what requests to a remote wait on until its first discovery
/// has finished, one way or the other.
final class Latch: Sendable {
    private struct State {
        var open = false
        var waiting: [Int: CheckedContinuation<Void, Never>] = [:]
        var next = 0
    }
    private let state = NIOLockedValueBox(State())

    var isOpen: Bool { state.withLockedValue { $0.open } }

    func open() {
        let waiting = state.withLockedValue { s in
            defer { s.open = true; s.waiting = [:] }
            return Array(s.waiting.values)
        }
        for w in waiting { w.resume() }
    }

    /// Returns when the latch opens or after `limit`, whichever is first.
    func wait(atMost limit: Duration) async {
        if isOpen { return }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let id: Int? = state.withLockedValue { s in
                if s.open { return nil }
                s.next += 1
                s.waiting[s.next] = c
                return s.next
            }
            guard let id else { return c.resume() }
            Task {
                try? await Task.sleep(for: limit)
                let timedOut = self.state.withLockedValue { $0.waiting.removeValue(forKey: id) }
                timedOut?.resume()
            }
        }
    }
}
