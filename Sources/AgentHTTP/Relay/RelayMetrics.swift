import Metrics

/// The relay's own metrics, beside the `provisioning_requests_total` and
/// `provisioning_request_duration_seconds` every client request counts (`MetricsMiddleware`);
/// `/metrics` renders them (README, "Outbound only: the relay", "Watching it").
enum RelayMetrics {
    /// A request whose agent was lost with it in flight, by what became of it: `resent`,
    /// `created` (the lost agent's create was found), `unsafe` (answered 502).
    static func failover(app: String, outcome: String) {
        Counter(label: "provisioning_relay_failovers_total", dimensions: [("app", app), ("outcome", outcome)]).increment()
    }

    /// A failed client or admin authentication: `401`, or `429` once its key is locked.
    static func authenticationFailure(for what: String, status: Int) {
        Counter(label: "provisioning_relay_authentication_failures_total", dimensions: [("for", what), ("status", String(status))]).increment()
    }

    /// Set when `/metrics` is read: serving agents and requests in flight, per app.
    static func refresh(agentsPerApp: [String: Int], inFlight: [String: Int]) {
        for (app, n) in agentsPerApp {
            Gauge(label: "provisioning_relay_agents_serving", dimensions: [("app", app)]).record(n)
            Gauge(label: "provisioning_relay_requests_in_flight", dimensions: [("app", app)]).record(inFlight[app] ?? 0)
        }
    }
}
