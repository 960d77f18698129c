import Testing
@testable import AgentCore

@Suite struct ConnectorLifecycleTests {
    @Test func firstLoadServes() {
        var l = ConnectorLifecycle()
        #expect(l.shouldLoad(contentHash: "a"))
        #expect(l.loaded(number: 1, contentHash: "a") == .none)
        #expect(l.serving == 1 && !l.shouldLoad(contentHash: "a") && l.shouldLoad(contentHash: "b"))
    }

    @Test func idleOldGenerationRetiresAtOnce() {
        var l = ConnectorLifecycle()
        _ = l.loaded(number: 1, contentHash: "a")
        #expect(l.loaded(number: 2, contentHash: "b") == .retire(1))
        l.retired(1)
        #expect(l.generations.keys.sorted() == [2])
    }

    @Test func busyOldGenerationDrainsThenRetires() {
        var l = ConnectorLifecycle()
        _ = l.loaded(number: 1, contentHash: "a")
        #expect(l.acquire() == 1)
        #expect(l.acquire() == 1)
        #expect(l.loaded(number: 2, contentHash: "b") == .none)
        #expect(l.draining == [1] && l.serving == 2)
        #expect(l.acquire() == 2)  // new requests go to the new generation
        #expect(l.release(1) == .none)
        #expect(l.release(1) == .retire(1))
        #expect(l.release(2) == .none)  // the serving one never retires on release
    }

    @Test func failedLoadKeepsServing() {
        var l = ConnectorLifecycle()
        _ = l.loaded(number: 1, contentHash: "a")
        l.loadFailed("bad ELF")
        #expect(l.serving == 1 && l.lastError == "bad ELF")
        #expect(l.loaded(number: 3, contentHash: "c") == .retire(1))
        #expect(l.lastError == nil)
    }

    @Test func removedFileKeepsServingUntilANewBuild() {
        var l = ConnectorLifecycle()
        _ = l.loaded(number: 1, contentHash: "a")
        l.fileWasRemoved()
        #expect(l.fileRemoved && l.acquire() == 1)
        _ = l.loaded(number: 2, contentHash: "a")  // the same build put back (or a config reload)
        #expect(!l.fileRemoved && l.draining == [1])
    }

    @Test func nothingServesBeforeALoad() {
        var l = ConnectorLifecycle()
        #expect(l.acquire() == nil)
        #expect(l.release(7) == .none)
    }
}
