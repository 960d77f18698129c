import AgentCore
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import Prometheus
import SCIMKit
import ServiceLifecycle

/// `/status`: one HTML page for the admin, readable without JavaScript and refreshed every
/// 10 s: every app with its target and a health dot (`HealthCheck`), its request rates from
/// the counters `/metrics` shows (`RequestRates`), its recent failures, and the plugins.
struct StatusPage {
    let service: SCIMService
    let health: HealthCheck
    let rates: RequestRates?
    let started = Date()

    func render() async -> String {
        let apps = await health.check()
        let perApp = rates?.perMinute() ?? [:]
        let window = rates?.window()
        let plugins = service.registry.status()
        var html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
            <title>provisioning-agent status</title>
            <style>
            body { font: 15px/1.45 system-ui, sans-serif; margin: 2em; color: #1d2125; }
            table { border-collapse: collapse; margin-bottom: 1.5em; }
            th, td { text-align: left; padding: .35em .8em; border-bottom: 1px solid #dde1e4; vertical-align: top; }
            th { background: #f3f5f6; }
            .dot { display: inline-block; width: .8em; height: .8em; border-radius: 50%; margin-right: .4em; vertical-align: -.05em; }
            .green .dot { background: #1f9d55; } .amber .dot { background: #e0a100; } .red .dot { background: #d62d20; }
            td.health, td.target { white-space: nowrap; }
            td.num { text-align: right; font-variant-numeric: tabular-nums; }
            .muted { color: #6b747c; }
            </style></head><body>
            <h1>provisioning-agent</h1>

            """
        let counts = Dictionary(grouping: apps, by: \.color).mapValues(\.count)
        let summary = [(AppHealth.Color.green, "serving"), (.amber, "degraded"), (.red, "failing")]
            .compactMap { c, word in counts[c].map { "\($0) \(word)" } }.joined(separator: ", ")
        html += "<p class=\"muted\">Configuration \(escape(service.registry.config.file)) · up since \(DateTime.format(started.timeIntervalSince1970)) · "
        html += "\(apps.count) app\(apps.count == 1 ? "" : "s")\(summary.isEmpty ? "" : ": " + summary)</p>\n"

        html += "<h2>Apps</h2>\n<table id=\"apps\"><tr><th>Health</th><th>App</th><th>Target</th><th>Why</th><th>Requests/min</th><th>Failed/min</th></tr>\n"
        for app in apps {
            // An app without a request in the window has a rate of 0 once there is a window.
            let rate = perApp[app.app] ?? (window != nil ? (0, 0) : nil)
            html += "<tr id=\"app-\(escape(app.app))\" class=\"\(app.color.rawValue)\"><td class=\"health\"><span class=\"dot\"></span>\(Self.word(app.color))</td>"
            html += "<td>\(escape(app.app))</td><td class=\"target\">\(escape(app.target))</td><td>\(escape(app.reason))</td>"
            html += "<td class=\"num\">\(rate.map { Self.number($0.requests) } ?? "–")</td><td class=\"num\">\(rate.map { Self.number($0.failed) } ?? "–")</td></tr>\n"
        }
        html += "</table>\n"
        if let window {
            html += "<p class=\"muted\">Rates over the last \(Int(window.rounded())) s, from provisioning_requests_total; failed means a 5xx answer.</p>\n"
        } else if rates == nil {
            html += "<p class=\"muted\">Request rates are not collected: server.metrics is false.</p>\n"
        }

        html += "<h2>Recent failures</h2>\n"
        let failing = apps.filter { !$0.failures.isEmpty }
        if failing.isEmpty { html += "<p>None since the agent started.</p>\n" }
        for app in failing {
            html += "<h3>\(escape(app.app))</h3>\n<table class=\"failures\"><tr><th>Time</th><th>Request</th><th>Status</th><th>Detail</th></tr>\n"
            for f in app.failures {
                html += "<tr><td>\(DateTime.format(f.time.timeIntervalSince1970))</td><td>\(escape(f.request))</td><td>\(f.status)</td><td>\(escape(f.detail))</td></tr>\n"
            }
            html += "</table>\n"
        }

        html += "<h2>Plugins</h2>\n<p class=\"muted\">From \(escape(service.registry.config.pluginsDirectory))</p>\n"
        html += "<table id=\"plugins\"><tr><th>File</th><th>Connector</th><th>Version</th><th>State</th><th>Generation</th><th>Loaded</th><th>Apps</th></tr>\n"
        for p in plugins {
            html += "<tr><td>\(escape((p.file as NSString).lastPathComponent))</td><td>\(escape(p.connector ?? "–"))</td><td>\(escape(p.version ?? "–"))</td>"
            html += "<td>\(escape(p.state))\(p.lastError.map { "<br><span class=\"muted\">\(escape($0))</span>" } ?? "")</td>"
            html += "<td>\(p.generation.map(String.init) ?? "–")</td><td>\(p.loadedAt.map { DateTime.format($0.timeIntervalSince1970) } ?? "–")</td>"
            html += "<td>\(escape(p.apps.joined(separator: ", ")))</td></tr>\n"
        }
        if plugins.isEmpty { html += "<tr><td colspan=\"7\">No plugins.</td></tr>\n" }
        html += "</table>\n</body></html>\n"
        return html
    }

    static func word(_ color: AppHealth.Color) -> String {
        switch color {
        case .green: "serving"
        case .amber: "degraded"
        case .red: "failing"
        }
    }

    static func number(_ value: Double) -> String { String(format: "%.1f", value) }

    func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    var response: Response {
        get async {
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: await render())))
        }
    }
}

/// Request rates per app from `provisioning_requests_total`, the counter `/metrics` shows:
/// totals are sampled every 10 s (and when the page is drawn), and a rate is the difference
/// across the last minute of samples, per minute.
final class RequestRates: Service, Sendable {
    struct Sample { var at: Double; var totals: [String: (requests: Double, failed: Double)] }
    private let samples = NIOLockedValueBox<[Sample]>([])
    static let span: Double = 60

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.sample()
                try await Task.sleep(for: .seconds(10))
            }
        }
    }

    /// Takes a sample now; keeps those of the last minute and the newest one older than that.
    @discardableResult
    func sample() -> [Sample] {
        let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        let sample = Sample(at: now, totals: Self.totals(PrometheusMetricsFactory.defaultRegistry.emitToString()))
        return samples.withLockedValue { s in
            s.append(sample)
            while s.count > 2, s[1].at <= now - Self.span { s.removeFirst() }
            return s
        }
    }

    /// Seconds the rates are taken over, once there are two samples.
    func window() -> Double? {
        let s = samples.withLockedValue { $0 }
        guard let first = s.first, let last = s.last, last.at > first.at else { return nil }
        return last.at - first.at
    }

    func perMinute() -> [String: (requests: Double, failed: Double)] {
        let s = sample()
        guard s.count >= 2, let first = s.first, let last = s.last, last.at > first.at else { return [:] }
        // Per minute over the last minute; while the agent is younger than that, the requests
        // so far (a burst in its first second is not extrapolated to a rate).
        let minutes = max(last.at - first.at, Self.span) / 60
        var out: [String: (requests: Double, failed: Double)] = [:]
        for (app, now) in last.totals {
            let before = first.totals[app] ?? (0, 0)
            out[app] = ((now.requests - before.requests) / minutes, (now.failed - before.failed) / minutes)
        }
        return out
    }

    /// Sums `provisioning_requests_total{app=…,status=…} N` lines per app: all, and 5xx.
    static func totals(_ text: String) -> [String: (requests: Double, failed: Double)] {
        var out: [String: (requests: Double, failed: Double)] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("provisioning_requests_total{") {
            guard let close = line.lastIndex(of: "}"), let value = Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)) else { continue }
            let labels = line[line.index(after: line.firstIndex(of: "{")!)..<close]
            var app: String?, status: String?
            for pair in labels.split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                let v = String(kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
                if kv[0] == "app" { app = v } else if kv[0] == "status" { status = v }
            }
            guard let app else { continue }
            var entry = out[app] ?? (0, 0)
            entry.requests += value
            if status?.hasPrefix("5") == true { entry.failed += value }
            out[app] = entry
        }
        return out
    }
}
