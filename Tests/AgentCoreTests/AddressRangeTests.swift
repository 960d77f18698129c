import Testing
@testable import AgentCore

@Suite struct AddressRangeTests {
    @Test func rangesHoldTheirAddresses() throws {
        let net = try #require(AddressRange("10.0.0.0/8"))
        #expect(net.contains("10.255.1.2") && !net.contains("11.0.0.1") && !net.contains("fd00::1") && !net.contains("nonsense"))
        #expect(try #require(AddressRange("192.0.2.7")).contains("192.0.2.7") && !AddressRange("192.0.2.7")!.contains("192.0.2.8"))
        #expect(try #require(AddressRange("192.0.2.0/25")).contains("192.0.2.127") && !AddressRange("192.0.2.0/25")!.contains("192.0.2.128"))
        #expect(try #require(AddressRange("fd00::/8")).contains("fdab::1") && !AddressRange("fd00::/8")!.contains("fe80::1"))
        #expect(AddressRange("0.0.0.0/0")!.contains("203.0.113.1"))
        #expect(AddressRange("10.0.0.9/8")?.description == "10.0.0.0/8")
        for bad in ["", "10.0.0.0/33", "10.0.0/8", "fd00::/129", "10.0.0.0/", "10.0.0.0/x", "host.example.com"] {
            #expect(AddressRange(bad) == nil, "\(bad)")
        }
    }

    @Test func theClientIsTheFirstHopFromTheRightThatIsNotATrustedProxy() {
        let trusted = [AddressRange("127.0.0.1")!, AddressRange("10.0.0.0/8")!]
        // Not through a trusted proxy: the header proves nothing.
        #expect(trusted.client(peer: "198.51.100.9", forwardedFor: ["203.0.113.7"]) == "198.51.100.9")
        #expect(trusted.client(peer: "127.0.0.1", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        // What the client wrote itself (leftmost) is skipped; proxies' own hops are too.
        #expect(trusted.client(peer: "127.0.0.1", forwardedFor: ["1.2.3.4, 203.0.113.7, 10.1.1.1"]) == "203.0.113.7")
        #expect(trusted.client(peer: "127.0.0.1", forwardedFor: ["1.2.3.4", "203.0.113.7"]) == "203.0.113.7")
        #expect(trusted.client(peer: "10.0.0.2", forwardedFor: ["[2001:db8::5]:4431"]) == "2001:db8::5")
        #expect(trusted.client(peer: "10.0.0.2", forwardedFor: ["203.0.113.7:50123"]) == "203.0.113.7")
        #expect(trusted.client(peer: "127.0.0.1", forwardedFor: []) == "127.0.0.1")
        #expect(trusted.client(peer: "127.0.0.1", forwardedFor: ["unknown"]) == "127.0.0.1")
        #expect([AddressRange]().client(peer: "127.0.0.1", forwardedFor: ["203.0.113.7"]) == "127.0.0.1")
    }
}
