import Foundation
import NIOConcurrencyHelpers
import SCIMKit
import Testing
@testable import AgentCore

@Suite struct CreateBatchesTests {
    static func user(_ i: Int) -> JSON { ["userName": .string("u\(i)")] }

    /// Creates that arrive while a batch is being written go together in a later one, and
    /// each gets back its own outcome, failures included.
    @Test func concurrentCreatesShareBatchesAndGetTheirOwnOutcome() async throws {
        let pool = BlockingCallPool(maxThreads: 8, idleTimeout: 1)
        let batches = CreateBatches()
        let written = NIOLockedValueBox<[[String]]>([])
        let write: CreateBatches.Write = { resources in
            let names = resources.map { $0["userName"]!.stringValue! }
            written.withLockedValue { $0.append(names) }
            usleep(20_000)  // a slow target: creates pile up behind the running batch
            return names.map { name in
                Int(name.dropFirst())! % 7 == 0 ? .failure(.uniqueness("\(name) is taken")) : .success(["id": .string("id-" + name)])
            }
        }
        let outcomes = await withTaskGroup(of: (Int, String).self) { group in
            for i in 1...200 {
                group.addTask {
                    do throws(SCIMError) {
                        let stored = try await batches.create(Self.user(i), app: "hr", calls: pool, write: write)
                        return (i, stored["id"]?.stringValue ?? "no id")
                    } catch {
                        return (i, "error \(error.status)")
                    }
                }
            }
            var all: [Int: String] = [:]
            for await (i, outcome) in group { all[i] = outcome }
            return all
        }
        for i in 1...200 { #expect(outcomes[i] == (i % 7 == 0 ? "error 409" : "id-u\(i)")) }
        let calls = written.withLockedValue { $0 }
        #expect(calls.flatMap { $0 }.sorted() == (1...200).map { "u\($0)" }.sorted())
        #expect(calls.allSatisfy { $0.count <= CreateBatches.maxBatch })
        #expect(calls.count < 100, "creates must have shared calls, got \(calls.count) calls for 200 creates")
        pool.shutdown()
    }

    /// Alone, a create is written at once: a batch of one, no waiting for company.
    @Test func aLoneCreateIsWrittenAlone() async throws {
        let pool = BlockingCallPool(maxThreads: 2, idleTimeout: 1)
        let batches = CreateBatches()
        let sizes = NIOLockedValueBox<[Int]>([])
        for i in 0..<5 {
            let stored = try await batches.create(Self.user(i), app: "hr", calls: pool) { resources in
                sizes.withLockedValue { $0.append(resources.count) }
                return resources.map { .success($0) }
            }
            #expect(stored == Self.user(i))
        }
        #expect(sizes.withLockedValue { $0 } == [1, 1, 1, 1, 1])
        pool.shutdown()
    }

    /// A writer that returns the wrong number of outcomes fails every create of that batch
    /// instead of handing out someone else's result.
    @Test func aWrongOutcomeCountFailsTheBatch() async {
        let pool = BlockingCallPool(maxThreads: 2, idleTimeout: 1)
        await #expect(throws: SCIMError.self) {
            try await CreateBatches().create(Self.user(1), app: "hr", calls: pool) { _ in [] }
        }
        pool.shutdown()
    }

    /// Once the pool is shut down, a create fails with 503 instead of waiting forever.
    @Test func aCreateAfterShutdownFails() async {
        let pool = BlockingCallPool(maxThreads: 2, idleTimeout: 1)
        pool.shutdown()
        do throws(SCIMError) {
            _ = try await CreateBatches().create(Self.user(1), app: "hr", calls: pool) { $0.map { .success($0) } }
            Issue.record("the create succeeded on a stopped pool")
        } catch {
            #expect(error.status == 503)
        }
    }
}
