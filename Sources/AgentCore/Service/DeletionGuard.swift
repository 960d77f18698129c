import Foundation
import NIOConcurrencyHelpers
import SCIMKit

/// A brake on accidental mass deprovisioning (`apps.<app>.guard`, Microsoft Entra's
/// "accidental deletions" threshold): once an app has made `maxDeletesPerHour` deletes (or
/// `maxDeactivationsPerHour` deactivations of users) within an hour, further ones are
/// refused with 429 until an admin releases the guard (`provisioning-agent guard release
/// --app A`, or a configuration reload). Nothing else the app does is affected.
///
/// A change counts when it is let through, before it runs, so concurrent deletes cannot pass
/// the threshold together; one that then fails gives its place back.
public final class DeletionGuard: Sendable {
    public enum Change: String, Sendable {
        case delete
        case deactivation
    }

    struct Counter {
        var times: [Double] = []  // the let-through changes of the last hour
        var tripped = false
        var refused = 0
    }

    private let counters = NIOLockedValueBox<[String: Counter]>([:])  // "app/change"
    static let window = 3600.0

    public init() {}

    /// A change let through: `done(succeeded:)` it once it has run.
    public struct Ticket: Sendable {
        let owner: DeletionGuard?
        let key: String
        let time: Double

        public func done(succeeded: Bool) {
            guard let owner, !succeeded else { return }
            owner.counters.withLockedValue { c in
                if let i = c[key]?.times.lastIndex(of: time) { c[key]?.times.remove(at: i) }
            }
        }
    }

    /// Lets the change through, or throws the 429 that says why and how to release it.
    public func admit(_ change: Change, app: String, limit: Int?, now: Double = Date().timeIntervalSince1970) throws(SCIMError) -> Ticket {
        guard let limit else { return Ticket(owner: nil, key: "", time: 0) }
        let key = app + "/" + change.rawValue
        let admitted = counters.withLockedValue { c -> Bool in
            var counter = c[key] ?? Counter()
            counter.times.removeAll { now - $0 >= Self.window }
            if counter.times.count >= limit { counter.tripped = true }
            if counter.tripped {
                counter.refused += 1
                c[key] = counter
                return false
            }
            counter.times.append(now)
            c[key] = counter
            return true
        }
        guard admitted else {
            AgentMetrics.guardRefusal(app: app, change: change.rawValue)
            let setting = change == .delete ? "maxDeletesPerHour" : "maxDeactivationsPerHour"
            let what = change == .delete ? "deletes" : "deactivations"
            var error = SCIMError(status: 429, detail: "deletion guard: app \(app) reached \(limit) \(what) within an hour (guard.\(setting)); further \(what) are refused until an admin checks them and runs: provisioning-agent guard release --app \(app) (or reloads the configuration)")
            error.retryAfter = Int(Self.window)
            throw error
        }
        return Ticket(owner: self, key: key, time: now)
    }

    /// Lets the app's deletes and deactivations through again; its counts start afresh.
    public func release(app: String) {
        counters.withLockedValue { c in
            for change in [Change.delete, .deactivation] { c[app + "/" + change.rawValue] = nil }
        }
    }

    /// Releases every app's guard; returns the apps that had been stopped.
    @discardableResult
    public func releaseAll() -> [String] {
        counters.withLockedValue { c in
            defer { c = [:] }
            return Set(c.filter { $0.value.tripped }.keys.map { String($0.split(separator: "/")[0]) }).sorted()
        }
    }

    /// Per app: changes in the last hour, whether tripped, refusals; for `/healthz` and the status file.
    public func status(now: Double = Date().timeIntervalSince1970) -> JSON {
        counters.withLockedValue { c in
            var out = JSONObject()
            for (key, counter) in c.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
                var app = out[parts[0]]?.objectValue ?? [:]
                app[parts[1]] = [
                    "lastHour": .number(Double(counter.times.filter { now - $0 < Self.window }.count)),
                    "tripped": .bool(counter.tripped), "refused": .number(Double(counter.refused)),
                ]
                out[parts[0]] = .object(app)
            }
            return .object(out)
        }
    }

    /// Whether a request sets a user's `active` to false: a PUT's body, or a PATCH operation
    /// (`path: active`, or no path and a value holding `active`). "False" counts as false,
    /// as some IdPs send it.
    static func deactivates(put body: JSON) -> Bool { isFalse(body["active"]) }

    static func deactivates(patch body: JSON) -> Bool {
        (body["Operations"]?.arrayValue ?? []).contains { op in
            guard let kind = op["op"]?.stringValue?.lowercased(), kind == "replace" || kind == "add" else { return false }
            if let path = op["path"]?.stringValue { return path.caselessEquals("active") && isFalse(op["value"]) }
            return isFalse(op["value"]?["active"])
        }
    }

    static func isFalse(_ v: JSON?) -> Bool {
        if v?.boolValue == false { return true }
        return v?.stringValue?.caselessEquals("false") == true
    }
}
