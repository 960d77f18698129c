import AgentCore
import Foundation
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SCIMKit

/// The relay's view of its connected agents: one entry per uplink connection (an agent may
/// hold several, to this relay and to others), the apps each serves, and the requests in
/// flight on each, answered by id. Nothing here outlives the process: relays share no state.
final class AgentDirectory: Sendable {
    let config: RelayConfig
    let logger: Logger

    struct Connection {
        let id: Int
        let name: String
        let address: String
        let connectedSince: Date
        let outbound: WebSocketOutboundWriter
        var apps: Set<String> = []
        var welcomed = false
        var draining = false
        var lastHeartbeat = Date()
        var lastReceived = ContinuousClock.now
        var inFlight = 0
        var served = 0
        var pending: [Int: Pending] = [:]
    }

    /// A request sent on a connection: its waiter, or its outcome if that came first.
    struct Pending {
        var waiter: CheckedContinuation<Exchange, Never>?
        var outcome: Exchange?
        let deadline: ContinuousClock.Instant
    }

    /// How one request handed to an agent ended.
    enum Exchange: Sendable {
        case answered(UplinkMessage)
        /// The message could not be written: the agent never saw it.
        case notSent
        /// The connection dropped after the request was sent: the agent may or may not have acted on it.
        case lost
        case timedOut
    }

    private struct State {
        var connections: [Int: Connection] = [:]
        var nextConnection = 1
        var nextRequest = 1
        /// When each app last lost a connection: a request arriving soon after waits a moment
        /// for the agent to reconnect instead of failing at once.
        var lastLost: [String: ContinuousClock.Instant] = [:]
    }

    private let state = NIOLockedValueBox(State())

    init(config: RelayConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    var connectionCount: Int { state.withLockedValue { $0.connections.count } }

    /// The agent a token belongs to, compared in constant time against every configured token.
    func authenticate(name: String?, bearer: String?) -> String? {
        guard let bearer, bearer.count > 7, bearer.prefix(7).lowercased() == "bearer " else { return nil }
        let given = Array(bearer.dropFirst(7).utf8)
        var match: String?
        for agent in config.agents where ConstantTime.equals(given, Array(agent.token.utf8)) && (name == nil || name == agent.name) {
            match = agent.name
        }
        return match
    }

    // MARK: a connection's life

    /// Serves one uplink connection until it closes: hello and welcome, heartbeats, responses.
    func serve(name: String, address: String, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async {
        let id = state.withLockedValue { s -> Int in
            let id = s.nextConnection
            s.nextConnection += 1
            s.connections[id] = Connection(id: id, name: name, address: address, connectedSince: Date(), outbound: outbound)
            return id
        }
        let log = {
            var log = logger
            log[metadataKey: "agent"] = .string(name)
            log[metadataKey: "agent.address"] = .string(address)
            log[metadataKey: "connection"] = .stringConvertible(id)
            return log
        }()
        do {
            // Both loops are child tasks, so that either ending cancels the other.
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.heartbeats(id, outbound, log) }
                group.addTask { try await self.read(id, inbound, outbound, log) }
            }
        } catch {}
        // Requests whose waiter is not yet registered find no entry and take it as lost too.
        let (lost, apps) = state.withLockedValue { s -> ([CheckedContinuation<Exchange, Never>], Set<String>) in
            guard let c = s.connections.removeValue(forKey: id) else { return ([], []) }
            for app in c.apps { s.lastLost[app] = .now }
            return (c.pending.values.compactMap(\.waiter), c.apps)
        }
        for waiter in lost { waiter.resume(returning: .lost) }
        log.warning("relay: agent disconnected", metadata: ["apps": .string(apps.sorted().joined(separator: ",")), "inFlight": .stringConvertible(lost.count)])
    }

    private func read(_ id: Int, _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, _ log: Logger) async throws {
        for try await message in inbound.messages(maxSize: UplinkLimits.maxMessage) {
            guard case .binary(let buffer) = message else { continue }
            let m: UplinkMessage
            do { m = try UplinkMessage.decode(buffer) } catch {
                log.error("relay: an agent sent a malformed message; closing its connection", metadata: ["error": .string(String(describing: error))])
                throw CancellationError()
            }
            state.withLockedValue { s in
                s.connections[id]?.lastReceived = .now
                s.connections[id]?.lastHeartbeat = Date()
            }
            switch m.type {
            case "response": resolve(connection: id, request: m.id, .answered(m))
            case "ping": try await outbound.write(.binary(UplinkMessage(["type": "pong"]).encoded()))
            case "pong": break
            case "hello", "apps": try await announce(id, m, outbound, log)
            case "draining":
                state.withLockedValue { $0.connections[id]?.draining = true }
                log.info("relay: agent connection draining")
            default: log.debug("relay: ignored a message", metadata: ["type": .string(m.type)])
            }
        }
        throw CancellationError()  // the agent closed: stop the heartbeats
    }

    private func announce(_ id: Int, _ m: UplinkMessage, _ outbound: WebSocketOutboundWriter, _ log: Logger) async throws {
        let announced = Set(m.header["apps"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        let accepted = announced.filter { config.apps[$0] != nil }
        let unknown = announced.subtracting(accepted)
        state.withLockedValue { s in
            s.connections[id]?.apps = accepted
            s.connections[id]?.welcomed = true
        }
        if !unknown.isEmpty {
            log.warning("relay: an agent announced apps this relay has no configuration for; it gets no requests for them", metadata: [
                "apps": .string(unknown.sorted().joined(separator: ",")),
            ])
        }
        if m.type == "hello" { log.info("relay: agent connected", metadata: ["apps": .string(accepted.sorted().joined(separator: ","))]) }
        try await outbound.write(.binary(UplinkMessage([
            "type": "welcome", "relay": .string(ProcessInfo.processInfo.hostName),
            "apps": .array(accepted.sorted().map(JSON.string)), "unknown": .array(unknown.sorted().map(JSON.string)),
        ]).encoded()))
    }

    /// Pings every heartbeat (a connection silent for three is dropped) and times out
    /// requests past `relay.limits.requestTimeout`.
    private func heartbeats(_ id: Int, _ outbound: WebSocketOutboundWriter, _ log: Logger) async throws {
        let period = Duration.milliseconds(Int(config.heartbeat * 1000))
        var lastPing = ContinuousClock.now
        while true {
            try await Task.sleep(for: min(period, .milliseconds(250)))
            let now = ContinuousClock.now
            guard let (last, expired) = state.withLockedValue({ s -> (ContinuousClock.Instant, [Int])? in
                guard let c = s.connections[id] else { return nil }
                return (c.lastReceived, c.pending.filter { $0.value.deadline < now && $0.value.outcome == nil }.map(\.key))
            }) else { return }
            for request in expired { resolve(connection: id, request: request, .timedOut) }
            if now - last > period * 3 {
                log.error("relay: agent silent for three heartbeats; dropping its connection")
                throw CancellationError()
            }
            if now - lastPing >= period {
                lastPing = now
                try await outbound.write(.binary(UplinkMessage(["type": "ping"]).encoded()))
            }
        }
    }

    // MARK: requests

    /// The connection to hand an app's request to: the least busy agent serving it.
    /// Waits up to 5 s when one of the app's agents was lost in the last 10 s (it is
    /// likely reconnecting) or all are draining.
    func pick(app: String) async -> (id: Int, outbound: WebSocketOutboundWriter)? {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let (choice, wait) = state.withLockedValue { s -> ((Int, WebSocketOutboundWriter)?, Bool) in
                let serving = s.connections.values.filter { $0.welcomed && $0.apps.contains(app) }
                if let best = serving.filter({ !$0.draining }).min(by: { ($0.inFlight, $0.served) < ($1.inFlight, $1.served) }) {
                    return ((best.id, best.outbound), false)
                }
                let recentlyLost = s.lastLost[app].map { ContinuousClock.now - $0 < .seconds(10) } ?? false
                return (nil, recentlyLost || !serving.isEmpty)
            }
            if let choice { return choice }
            guard wait, ContinuousClock.now < deadline else { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Sends a request on a connection and waits for its response.
    func exchange(on connection: (id: Int, outbound: WebSocketOutboundWriter), _ request: UplinkMessage, timeout: Double) async -> Exchange {
        var request = request
        let requestID = state.withLockedValue { s -> Int in
            defer { s.nextRequest += 1 }
            return s.nextRequest
        }
        request.header["id"] = .number(Double(requestID))
        let registered = state.withLockedValue { s -> Bool in
            guard s.connections[connection.id] != nil else { return false }
            s.connections[connection.id]!.pending[requestID] = Pending(deadline: .now + .milliseconds(Int(timeout * 1000)))
            s.connections[connection.id]!.inFlight += 1
            return true
        }
        guard registered else { return .notSent }
        do { try await connection.outbound.write(.binary(request.encoded())) } catch {
            resolve(connection: connection.id, request: requestID, .notSent)
        }
        return await withCheckedContinuation { (waiter: CheckedContinuation<Exchange, Never>) in
            let ready = state.withLockedValue { s -> Exchange? in
                guard let p = s.connections[connection.id]?.pending[requestID] else { return .lost }  // the connection is gone
                if let outcome = p.outcome {
                    s.connections[connection.id]!.pending[requestID] = nil
                    return outcome
                }
                s.connections[connection.id]!.pending[requestID]!.waiter = waiter
                return nil
            }
            if let ready { waiter.resume(returning: ready) }
        }
    }

    private func resolve(connection: Int, request: Int?, _ outcome: Exchange) {
        guard let request else { return }
        let waiter = state.withLockedValue { s -> CheckedContinuation<Exchange, Never>? in
            guard var p = s.connections[connection]?.pending[request], p.outcome == nil else { return nil }
            s.connections[connection]!.inFlight -= 1
            if case .answered = outcome { s.connections[connection]!.served += 1 }
            guard let w = p.waiter else {
                p.outcome = outcome  // answered before its waiter was registered
                s.connections[connection]!.pending[request] = p
                return nil
            }
            s.connections[connection]!.pending[request] = nil
            return w
        }
        waiter?.resume(returning: outcome)
    }

    // MARK: what admins see

    /// `/agents`: each connection, grouped by agent.
    var listing: JSON {
        let connections = state.withLockedValue { Array($0.connections.values) }.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
        let iso = ISO8601DateFormatter()
        return ["agents": .array(connections.map { c in
            [
                "name": .string(c.name), "connection": .number(Double(c.id)), "address": .string(c.address),
                "apps": .array(c.apps.sorted().map(JSON.string)), "connectedSince": .string(iso.string(from: c.connectedSince)),
                "lastHeartbeat": .string(iso.string(from: c.lastHeartbeat)), "inFlight": .number(Double(c.inFlight)),
                "served": .number(Double(c.served)), "state": .string(c.draining ? "draining" : c.welcomed ? "serving" : "connecting"),
            ]
        })]
    }

    /// How many serving connections each configured app has.
    var agentsPerApp: [String: Int] {
        let connections = state.withLockedValue { Array($0.connections.values) }
        var out: [String: Int] = [:]
        for app in config.appNames { out[app] = connections.filter { $0.welcomed && !$0.draining && $0.apps.contains(app) }.count }
        return out
    }
}
