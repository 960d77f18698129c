import Foundation
import Testing
@testable import AgentCore
import SCIMKit

/// Blocks callers until opened.
final class Gate: @unchecked Sendable {
    private let condition = NSCondition()
    private var isOpen = false
    func wait() {
        condition.lock()
        while !isOpen { condition.wait() }
        condition.unlock()
    }
    func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }
}

@Suite struct BlockingCallPoolTests {
    /// An app whose calls all block cannot take the threads another app needs.
    @Test func aSlowAppLeavesRoomForTheOthers() async throws {
        let pool = BlockingCallPool(maxThreads: 8, maxPerApp: 4, idleTimeout: 1)
        let gate = Gate()
        let slow = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        try await pool.run(app: "slow") { gate.wait() }
                    }
                }
                try await group.waitForAll()
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        // 20 blocked calls of "slow", yet "fast" is served.
        let answer = try await pool.run(app: "fast") { 42 }
        #expect(answer == 42)
        #expect(pool.threadCount <= 5)
        gate.open()
        try await slow.value
    }

    @Test func errorsReachTheCaller() async {
        let pool = BlockingCallPool(maxThreads: 2, maxPerApp: 2, idleTimeout: 1)
        await #expect(throws: SCIMError.notFound("x")) {
            try await pool.run(app: "a") { () throws(SCIMError) -> Int in throw SCIMError.notFound("x") }
        }
    }

    /// Idle threads leave; the pool starts new ones when work comes back.
    @Test func idleThreadsLeaveAndComeBack() async throws {
        let pool = BlockingCallPool(maxThreads: 4, maxPerApp: 4, idleTimeout: 2)
        #expect(try await pool.run(app: "a") { 1 } == 1)
        #expect(pool.threadCount >= 1)
        try await Task.sleep(for: .seconds(4))
        #expect(pool.threadCount == 0)
        #expect(try await pool.run(app: "a") { 2 } == 2)
    }

    @Test func afterShutdownCallsAreRefused() async {
        let pool = BlockingCallPool(maxThreads: 2, maxPerApp: 2, idleTimeout: 1)
        pool.shutdown()
        await #expect(throws: SCIMError(status: 503, detail: "the agent is shutting down")) { try await pool.run(app: "a") { 1 } }
    }
}

extension BlockingCallPoolTests {
    /// After a burst, steady light traffic goes to the thread that was idle the shortest
    /// time, so the surplus threads reach their idle timeout and leave.
    @Test func surplusThreadsLeaveUnderLightTraffic() async throws {
        let pool = BlockingCallPool(maxThreads: 64, maxPerApp: 64, idleTimeout: 1)
        let gate = Gate()
        let burst = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<40 { group.addTask { try await pool.run(app: "a") { gate.wait() } } }
                try await group.waitForAll()
            }
        }
        while pool.threadCount < 40 { try await Task.sleep(for: .milliseconds(10)) }
        gate.open()
        try await burst.value
        // One call at a time for 2.5 s: every 5 ms, far more often than the idle timeout.
        let end = ContinuousClock.now + .milliseconds(2500)
        while ContinuousClock.now < end {
            _ = try await pool.run(app: "a") { 1 }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(pool.threadCount <= 2)
    }
}
