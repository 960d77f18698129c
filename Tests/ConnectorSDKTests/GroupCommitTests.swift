import Foundation
import Testing
@testable import ConnectorSDK

@Suite struct GroupCommitTests {
    /// Callers that arrive while a batch is being written are written together in the next
    /// one, and each gets back its own item's outcome, failures included.
    @Test func concurrentCallersShareBatchesAndGetTheirOwnOutcome() async throws {
        let batches = Locked<[[Int]]>([])
        let commit = GroupCommit<Int, String>(maxBatch: 8) { items in
            batches.withLock { $0.append(items) }
            usleep(20_000)  // a slow target: callers pile up behind the running batch
            return items.map { $0 % 7 == 0 ? .failure(SCIMError.uniqueness("\($0) is taken")) : .success("row \($0)") }
        }
        let outcomes = await withTaskGroup(of: (Int, String).self) { group in
            for i in 1...40 {
                group.addTask {
                    await withCheckedContinuation { done in
                        Thread.detachNewThread {
                            do { done.resume(returning: (i, try commit.submit(i))) } catch {
                                done.resume(returning: (i, "error \((error as? SCIMError)?.status ?? 0)"))
                            }
                        }
                    }
                }
            }
            var all: [Int: String] = [:]
            for await (i, outcome) in group { all[i] = outcome }
            return all
        }
        for i in 1...40 { #expect(outcomes[i] == (i % 7 == 0 ? "error 409" : "row \(i)")) }
        let written = batches.withLock { $0 }
        #expect(written.flatMap { $0 }.sorted() == Array(1...40))
        #expect(written.allSatisfy { $0.count <= 8 })
        #expect(written.count < 40, "some callers must have shared a batch")
    }

    /// Alone, a caller writes at once: a batch of one, no waiting for company.
    @Test func aLoneCallerWritesItsOwnBatch() throws {
        let sizes = Locked<[Int]>([])
        let commit = GroupCommit<Int, Int>(maxBatch: 100) { items in
            sizes.withLock { $0.append(items.count) }
            return items.map { .success($0 * 2) }
        }
        for i in 0..<5 { #expect(try commit.submit(i) == i * 2) }
        #expect(sizes.withLock { $0 } == [1, 1, 1, 1, 1])
    }

    /// A writer that returns the wrong number of outcomes fails every caller of that batch
    /// instead of handing out someone else's result.
    @Test func aWrongOutcomeCountFailsTheBatch() {
        let commit = GroupCommit<Int, Int>(maxBatch: 4) { _ in [] }
        #expect(throws: SCIMError.self) { try commit.submit(1) }
    }
}
