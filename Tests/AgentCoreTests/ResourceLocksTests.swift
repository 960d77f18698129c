import NIOConcurrencyHelpers
import SCIMKit
import Testing
@testable import AgentCore

@Suite struct ResourceLocksTests {
    /// Holders of one key never overlap, in arrival order or not; other keys do not wait.
    @Test func oneHolderPerKey() async throws {
        let locks = ResourceLocks()
        let inside = NIOLockedValueBox([String: Int]())
        let most = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                let key = "app/User/\(i % 4)"
                group.addTask {
                    try await locks.withLock(key) { () async throws(SCIMError) -> Void in
                        let n = inside.withLockedValue { $0[key, default: 0] += 1; return $0.values.reduce(0, +) }
                        most.withLockedValue { $0 = max($0, n) }
                        #expect(inside.withLockedValue { $0[key] } == 1)
                        await Task.yield()
                        inside.withLockedValue { $0[key]! -= 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(locks.count == 0)
        #expect(most.withLockedValue { $0 } <= 4)
    }

    @Test func anErrorReleasesTheKey() async {
        let locks = ResourceLocks()
        await #expect(throws: SCIMError.self) {
            try await locks.withLock("k") { () async throws(SCIMError) -> Int in throw SCIMError.changed("x") }
        }
        #expect(locks.count == 0)
        let v = try? await locks.withLock("k") { () async throws(SCIMError) -> Int in 7 }
        #expect(v == 7)
    }
}
