import Foundation
import NIOConcurrencyHelpers
import SCIMKit

/// What the status page shows of one app: its target, a health colour with the reason, and
/// its recent failures.
public struct AppHealth: Sendable {
    public enum Color: String, Sendable {
        /// Serving, and its target answers its test.
        case green
        /// Serving but degraded: recent failed calls, a breaker half-open, a child restarting,
        /// a test that did not answer in time.
        case amber
        /// Failing or missing: no target, its test fails, a breaker open.
        case red
    }

    public var app: String
    /// "flatfile 1.2.0 · generation 3 · in-process", "remote https://scim.example.com/v2".
    public var target: String
    public var color: Color
    public var reason: String
    public var failures: [RecentFailures.Failure]
}

/// The last failures answered per app (5xx, and 429 refusals), for the status page: the HTTP
/// front records each one when it turns the error into a response.
public final class RecentFailures: Sendable {
    public struct Failure: Sendable {
        public var time: Date
        public var request: String
        public var status: Int
        public var detail: String
    }

    static let kept = 10
    private let byApp = NIOLockedValueBox<[String: [Failure]]>([:])

    public init() {}

    public func record(app: String, request: String, status: Int, detail: String) {
        let failure = Failure(time: Date(), request: request, status: status, detail: detail)
        byApp.withLockedValue { all in
            var list = all[app] ?? []
            list.append(failure)
            if list.count > Self.kept { list.removeFirst(list.count - Self.kept) }
            all[app] = list
        }
    }

    /// The most recent first.
    public func of(_ app: String) -> [Failure] { byApp.withLockedValue { $0[app] ?? [] }.reversed() }
}

/// Judges each app's health for the status page: what the registry knows (a target or why
/// there is none, breaker, child process), the target's own `test` (cached a few seconds, so
/// that a page refreshed by many admins does not become load on the target), and the
/// failures recently answered.
public final class HealthCheck: Sendable {
    let registry: ConnectorRegistry
    public let failures: RecentFailures
    /// How long a test's result is reused, and how long a test may take.
    static let testCache: Double = 5
    static let testTimeout: Duration = .seconds(3)
    /// Failures this recent make an app amber.
    static let recent: TimeInterval = 300

    private struct Tested { var at: Double; var target: ObjectIdentifier; var task: Task<Result<String, SCIMError>, Never> }
    private let tested = NIOLockedValueBox<[String: Tested]>([:])

    public init(registry: ConnectorRegistry, failures: RecentFailures) {
        self.registry = registry
        self.failures = failures
    }

    public func check() async -> [AppHealth] {
        await withTaskGroup(of: AppHealth.self) { group in
            for app in registry.config.appNames { group.addTask { await self.check(app: app) } }
            var out: [AppHealth] = []
            for await h in group { out.append(h) }
            return out.sorted { $0.app < $1.app }
        }
    }

    func check(app: String) async -> AppHealth {
        let failures = failures.of(app)
        let described = describe(app)
        do throws(SCIMError) {
            return try await registry.withLease(app: app, awaitingDiscovery: false) { lease throws(SCIMError) -> AppHealth in
                var health = AppHealth(app: app, target: described, color: .green, reason: "serving", failures: failures)
                if let number = lease.generationNumber {
                    health.target = "\(lease.target.name) \(lease.target.version) · generation \(number) · "
                        + (lease.target is IsolatedConnector ? "in a child process" : "in-process")
                }
                if let remote = lease.target as? RemoteTarget {
                    switch remote.breakerState {
                    case "open": return health.with(.red, "circuit breaker open: calls are refused until it half-opens")
                    case "half-open": health = health.with(.amber, "circuit breaker half-open: trying the remote again")
                    default: break
                    }
                }
                if let isolated = lease.target as? IsolatedConnector {
                    let process = isolated.processStatus
                    if process["state"]?.stringValue != "running" {
                        let why = process["lastReason"]?.stringValue.map { "; its process \($0)" } ?? ""
                        return health.with(.amber, "its child process is restarting\(why)")
                    }
                }
                switch await test(app, lease.target) {
                case nil: return health.with(.amber, "its test did not answer within \(Self.testTimeout)")
                case .failure(let error)?: return health.with(.red, "its test fails: \(error.detail)")
                case .success?: break
                }
                let cutoff = Date().addingTimeInterval(-Self.recent)
                let recent = failures.filter { $0.time > cutoff && $0.status >= 500 }
                if health.color == .green, let last = recent.first {
                    return health.with(.amber, "\(recent.count) failed call\(recent.count == 1 ? "" : "s") in the last 5 minutes; last: \(last.detail)")
                }
                return health
            }
        } catch {
            return AppHealth(app: app, target: described, color: .red, reason: error.detail, failures: failures)
        }
    }

    /// The target as configured, for an app that has none serving.
    func describe(_ app: String) -> String {
        switch registry.config.apps[app]?.target {
        case .connector(let name, _)?: "connector \(name)"
        case .remote(let remote)?: "remote \(remote.url)"
        case nil: "?"
        }
    }

    /// The target's test, or nil when it did not answer in time. A test started in the last
    /// `testCache` seconds is shared: a page drawn while it runs waits for the same one, and
    /// one drawn after it ended gets its outcome. `target` only identifies the cache entry.
    func test(_ app: String, _ target: any Target) async -> Result<String, SCIMError>? {
        let now = monotonicSeconds()
        let id = ObjectIdentifier(target)
        let registry = self.registry
        let running = tested.withLockedValue { t -> Task<Result<String, SCIMError>, Never> in
            if let c = t[app], c.target == id, now - c.at < Self.testCache { return c.task }
            // With a lease of its own, so that the target stays loaded while its test runs,
            // however long a page waits for it.
            let task = Task { () -> Result<String, SCIMError> in
                do throws(SCIMError) {
                    return .success(try await registry.withLease(app: app, awaitingDiscovery: false) { lease throws(SCIMError) in try await lease.target.test() })
                } catch { return .failure(error) }
            }
            t[app] = Tested(at: now, target: id, task: task)
            return task
        }
        return await withTaskGroup(of: Result<String, SCIMError>?.self) { group in
            group.addTask { await running.value }
            group.addTask { try? await Task.sleep(for: Self.testTimeout); return nil }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}

extension AppHealth {
    func with(_ color: Color, _ reason: String) -> AppHealth {
        var h = self
        h.color = color
        h.reason = reason
        return h
    }
}
