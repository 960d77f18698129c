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

    @Test func aSecondFileForTheSameConnectorIsRefused() {
        var l = ConnectorLifecycle()
        #expect(l.admit(file: "/p/a.so") == .open(test: false))
        #expect(l.opened(number: 1, contentHash: "a", file: "/p/a.so", openErrors: "") == .none)
        #expect(l.serves(file: "/p/a.so", contentHash: "a") && !l.serves(file: "/p/a.so", contentHash: "b"))
        #expect(l.admit(file: "/p/b.so") == .duplicate(of: "/p/a.so"))
        #expect(l.admit(file: "/p/a.so") == .open(test: true))  // a new build of the same file
        l.fileWasRemoved()
        #expect(l.admit(file: "/p/b.so") == .open(test: true))  // the file that served is gone: another may take over
    }

    @Test func aReplacementThatCannotOpenForEveryAppIsDiscarded() {
        var l = ConnectorLifecycle()
        _ = l.opened(number: 1, contentHash: "a", file: "/p/a.so", openErrors: "")
        #expect(l.opened(number: 2, contentHash: "b", file: "/p/a.so", openErrors: "app hr: bad settings") == .discard(2, "new build not loaded: app hr: bad settings"))
        #expect(l.serving == 1 && l.lastError == "new build not loaded: app hr: bad settings")
        #expect(l.acquire() == 1)
    }

    @Test func aFirstLoadServesTheAppsThatOpened() {
        var l = ConnectorLifecycle()
        #expect(l.opened(number: 1, contentHash: "a", file: "/p/a.so", openErrors: "app hr: bad settings") == .none)
        #expect(l.serving == 1 && l.lastError == "app hr: bad settings")
    }

    @Test func nothingServesBeforeALoad() {
        var l = ConnectorLifecycle()
        #expect(l.acquire() == nil)
        #expect(l.release(7) == .none)
    }
}

@Suite struct CircuitBreakerTests {
    @Test func opensAfterConsecutiveFailuresAndProbesAfterCooldown() {
        var b = CircuitBreaker(threshold: 3, cooldown: 10)
        #expect(b.admit(now: 0) == nil)
        b.failed(now: 0)
        b.failed(now: 1)
        b.succeeded()  // a success resets the count
        b.failed(now: 2)
        b.failed(now: 3)
        #expect(b.admit(now: 3) == nil && b.label == "closed")
        b.failed(now: 4)
        #expect(b.label == "open" && b.admit(now: 5) == 9)
        #expect(b.admit(now: 14) == nil && b.label == "half-open")  // one probe
        #expect(b.admit(now: 14) != nil)  // and only one
        b.failed(now: 15)
        #expect(b.label == "open" && b.admit(now: 20) != nil)
        #expect(b.admit(now: 25) == nil)
        b.succeeded()
        #expect(b.label == "closed")
    }
}

@Suite struct RemoteConfigTests {
    @Test func remoteAppsAreValidated() throws {
        let ok = try AgentConfig.parse("""
            apps:
              crm:
                remote:
                  url: http://127.0.0.1:9000/scim/v2/
                  auth: { type: oauth2, tokenURL: "https://idp/token", clientID: c, clientSecret: "${S}" }
                  timeouts: { connect: 2, request: 5 }
                  retries: 0
                auth: { type: none }
            """, file: "/etc/a.yaml", environment: ["S": "s3"])
        guard case .remote(let r)? = ok.apps["crm"]?.target else { Issue.record("not remote"); return }
        #expect(r.url == "http://127.0.0.1:9000/scim/v2" && r.requestTimeout == 5 && r.retries == 0)
        #expect(r.auth == .oauth2(tokenURL: "https://idp/token", clientID: "c", clientSecret: "s3", scope: nil))
        do {
            _ = try AgentConfig.parse("apps:\n  x:\n    remote: { url: \"http://scim.example.com/v2\" }\n    auth: { type: none }\n", file: "/a.yaml", environment: [:])
            Issue.record("plain http to a non-loopback host was accepted")
        } catch let e as AgentConfig.Invalid {
            #expect(e.problems.contains { $0.key == "apps.x.remote.url" && $0.message.hasPrefix("plain http://") })
        }
    }
}
