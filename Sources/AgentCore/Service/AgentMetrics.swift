import Foundation
import Metrics
import NIOConcurrencyHelpers
import SCIMKit

/// The agent's metrics, through swift-metrics (the `serve` command bootstraps the Prometheus
/// backend and `/metrics` renders it; elsewhere they go nowhere). Handles are made once per
/// set of labels and kept: a request costs one dictionary lookup.
public enum AgentMetrics {
    private static let counters = NIOLockedValueBox<[String: Counter]>([:])
    private static let timers = NIOLockedValueBox<[String: Metrics.Timer]>([:])

    static func counter(_ name: String, _ labels: [(String, String)]) -> Counter {
        let key = labels.reduce(name) { $0 + "\u{1}" + $1.1 }
        return counters.withLockedValue { c in
            if let existing = c[key] { return existing }
            let made = Counter(label: name, dimensions: labels)
            c[key] = made
            return made
        }
    }

    static func timer(_ name: String, _ labels: [(String, String)]) -> Metrics.Timer {
        let key = labels.reduce(name) { $0 + "\u{1}" + $1.1 }
        return timers.withLockedValue { t in
            if let existing = t[key] { return existing }
            let made = Metrics.Timer(label: name, dimensions: labels, preferredDisplayUnit: .seconds)
            t[key] = made
            return made
        }
    }

    /// The handles of one kind of request, made once: the label values are the key, so a
    /// request costs one hash of them and no string building.
    private struct RequestKey: Hashable { var app: String; var method: String; var operation: String; var status: Int }
    private static let requests = NIOLockedValueBox<[RequestKey: (Counter, Metrics.Timer)]>([:])
    private struct CallKey: Hashable { var app: String; var connector: String; var isolation: String }
    private static let calls = NIOLockedValueBox<[CallKey: Metrics.Timer]>([:])

    /// One SCIM request answered: `provisioning_requests_total{app,method,status}` and
    /// `provisioning_request_duration_seconds{app,operation}`.
    public static func request(app: String, method: String, operation: String, status: Int, nanoseconds: Int64) {
        let key = RequestKey(app: app, method: method, operation: operation, status: status)
        let (count, time) = requests.withLockedValue { r in
            if let existing = r[key] { return existing }
            let made = (counter("provisioning_requests_total", [("app", app), ("method", method), ("status", String(status))]),
                        timer("provisioning_request_duration_seconds", [("app", app), ("operation", operation)]))
            r[key] = made
            return made
        }
        count.increment()
        time.recordNanoseconds(nanoseconds)
    }

    /// One call into a connector (in-process or in its child process): its duration, and its
    /// error status when it failed.
    static func connectorCall(app: String, connector: String, isolation: String, started: UInt64, error: SCIMError?) {
        let elapsed = Int64(DispatchTime.now().uptimeNanoseconds &- started)
        let key = CallKey(app: app, connector: connector, isolation: isolation)
        let time = calls.withLockedValue { c in
            if let existing = c[key] { return existing }
            let made = timer("provisioning_connector_call_duration_seconds", [("app", app), ("connector", connector), ("isolation", isolation)])
            c[key] = made
            return made
        }
        time.recordNanoseconds(elapsed)
        if let error {
            counter("provisioning_connector_call_errors_total", [("app", app), ("connector", connector), ("status", String(error.status))]).increment()
        }
    }

    static func pluginLoad(connector: String, result: String) {
        counter("provisioning_plugin_loads_total", [("connector", connector), ("result", result)]).increment()
    }

    static func isolatedChild(app: String, event: String) {
        counter("provisioning_isolated_child_events_total", [("app", app), ("event", event)]).increment()
    }

    static func guardRefusal(app: String, change: String) {
        counter("provisioning_deletion_guard_refusals_total", [("app", app), ("change", change)]).increment()
    }

    /// The gauges that describe the agent's state, set from the registry when `/metrics` is
    /// read: calls in flight and generations per connector, isolated children running,
    /// remote circuit breakers (0 closed, 0.5 half-open, 1 open), guards stopped.
    public static func refreshGauges(_ registry: ConnectorRegistry) {
        var inFlight: [String: Int] = [:]
        var generations: [String: Int] = [:]
        for status in registry.status() where status.state != "retired" && status.state != "failed" {
            let name = status.connector ?? "?"
            inFlight[name, default: 0] += status.inFlight
            generations[name + "\u{1}" + status.state, default: 0] += 1
        }
        for (name, n) in inFlight { Gauge(label: "provisioning_connector_calls_in_flight", dimensions: [("connector", name)]).record(n) }
        for (key, n) in generations {
            let parts = key.split(separator: "\u{1}").map(String.init)
            Gauge(label: "provisioning_plugin_generations", dimensions: [("connector", parts[0]), ("state", parts[1])]).record(n)
        }
        for (app, remote) in registry.remotes {
            let value: Double = switch remote.breakerState {
            case "open": 1
            case "half-open": 0.5
            default: 0
            }
            Gauge(label: "provisioning_remote_circuit_breaker_state", dimensions: [("app", app)]).record(value)
        }
        let guards = registry.deletionGuard.status()
        for app in registry.config.appNames {
            for change in ["delete", "deactivation"] {
                let counts = guards[app]?[change]
                Gauge(label: "provisioning_deletion_guard_last_hour", dimensions: [("app", app), ("change", change)]).record(counts?["lastHour"]?.intValue ?? 0)
                Gauge(label: "provisioning_deletion_guard_stopped", dimensions: [("app", app), ("change", change)]).record(counts?["tripped"]?.boolValue == true ? 1 : 0)
            }
        }
    }
}
