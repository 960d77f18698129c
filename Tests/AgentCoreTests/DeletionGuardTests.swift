import Testing
@testable import AgentCore
import SCIMKit

@Suite struct DeletionGuardTests {
    @Test func itStopsAtTheLimitAndStaysStoppedUntilReleased() throws {
        let g = DeletionGuard()
        for _ in 0..<3 { try g.admit(.delete, app: "hr", limit: 3, now: 1000).done(succeeded: true) }
        #expect(throws: SCIMError.self) { try g.admit(.delete, app: "hr", limit: 3, now: 1001) }
        // Stopped even when the hour has passed: an admin looks first.
        #expect(throws: SCIMError.self) { try g.admit(.delete, app: "hr", limit: 3, now: 9000) }
        // Other apps and deactivations are counted apart; no limit is no guard.
        _ = try g.admit(.delete, app: "crm", limit: 3, now: 1001)
        _ = try g.admit(.deactivation, app: "hr", limit: 3, now: 1001)
        _ = try g.admit(.delete, app: "lab", limit: nil, now: 1001)
        g.release(app: "hr")
        _ = try g.admit(.delete, app: "hr", limit: 3, now: 9001)
    }

    @Test func aFailedChangeGivesItsPlaceBackAndOldOnesExpire() throws {
        let g = DeletionGuard()
        try g.admit(.delete, app: "hr", limit: 2, now: 0).done(succeeded: false)
        try g.admit(.delete, app: "hr", limit: 2, now: 1).done(succeeded: true)
        try g.admit(.delete, app: "hr", limit: 2, now: 2).done(succeeded: true)
        // An hour after the first, it has left the window: one more goes through, and then the
        // window holds two again.
        try g.admit(.delete, app: "hr", limit: 2, now: 3601).done(succeeded: true)
        do {
            _ = try g.admit(.delete, app: "hr", limit: 2, now: 3601.5)
            Issue.record("let a third through within the hour")
        } catch {
            #expect(error.status == 429 && error.retryAfter == 3600)
            #expect(error.detail.contains("guard release --app hr"))
        }
        #expect(g.status(now: 3602)["hr"]?["delete"]?["tripped"] == .bool(true))
        #expect(g.releaseAll() == ["hr"])
    }

    @Test func whatCountsAsADeactivation() throws {
        #expect(DeletionGuard.deactivates(patch: ["Operations": [["op": "replace", "path": "active", "value": false]]]))
        #expect(DeletionGuard.deactivates(patch: ["Operations": [["op": "Replace", "value": ["active": "False"]]]]))
        #expect(!DeletionGuard.deactivates(patch: ["Operations": [["op": "replace", "path": "active", "value": true]]]))
        #expect(!DeletionGuard.deactivates(patch: ["Operations": [["op": "remove", "path": "active"]]]))
        #expect(DeletionGuard.deactivates(put: ["userName": "a", "active": false]))
        #expect(!DeletionGuard.deactivates(put: ["userName": "a"]))
    }
}
