import HTTPTypes
import NIOCore
import Testing
@testable import AgentHTTP
import SCIMKit

@Suite struct RelayTests {
    @Test func uplinkMessagesRoundTripWithTheirBody() throws {
        let message = UplinkMessage(
            ["type": "request", "id": 7, "headers": UplinkMessage.fields([.contentType: "application/scim+json", .accept: "*/*"])],
            body: ByteBuffer(string: "{\"userName\":\"bjensen\"}"))
        let decoded = try UplinkMessage.decode(message.encoded())
        #expect(decoded.type == "request" && decoded.id == 7)
        #expect(String(buffer: decoded.body) == "{\"userName\":\"bjensen\"}")
        #expect(UplinkMessage.fields(decoded.header["headers"])[.contentType] == "application/scim+json")
    }

    @Test(arguments: [
        [UInt8](), [0, 0], [0, 0, 0, 9, 123], [0, 0, 0, 2, 91, 93], [0, 0, 0, 2, 123, 125], [0xff, 0xff, 0xff, 0xff, 1],
        [0, 0, 0, 12] + Array("{\"type\":1}xx".utf8),
    ])
    func malformedMessagesAreRefused(_ bytes: [UInt8]) {
        #expect(throws: UplinkMessage.Malformed.self) { try UplinkMessage.decode(ByteBuffer(bytes: bytes)) }
    }

    @Test func failoverResendsWhatIsIdempotentAndLooksCreatesUp() {
        func kind(_ method: HTTPRequest.Method, _ path: String, _ body: String = "") -> String {
            switch Failover.kind(method: method, path: path, body: ByteBuffer(string: body)) {
            case .resend: "resend"
            case .create(let attribute, let value, _): "create \(attribute)=\(value)"
            case .unsafe(let what): "unsafe \(what)"
            }
        }
        #expect(kind(.get, "/apps/hr/scim/v2/Users/1") == "resend")
        #expect(kind(.patch, "/apps/hr/scim/v2/Groups/1") == "resend")
        #expect(kind(.delete, "/apps/hr/scim/v1/Users/1") == "resend")
        #expect(kind(.post, "/apps/hr/scim/v2/Users/.search") == "resend")
        #expect(kind(.post, "/apps/hr/scim/v2/Users", #"{"userName":"bjensen"}"#) == "create userName=bjensen")
        #expect(kind(.post, "/apps/hr/scim/v1/Groups", #"{"displayName":"Ops"}"#) == "create displayName=Ops")
        #expect(kind(.post, "/apps/hr/scim/v2/Users", #"{"name":{}}"#) == "unsafe a create without userName")
        #expect(kind(.post, "/apps/hr/scim/v2/Bulk", "{}") == "unsafe a Bulk request")
    }

    @Test func theThrottleDelaysThenLocksOneAddressAndCredential() {
        let throttle = AuthThrottle()
        let attacker = AuthThrottle.Key(address: "203.0.113.9", credential: "basic okta")
        let idp = AuthThrottle.Key(address: "198.51.100.1", credential: "basic okta")
        let delays = (1...9).map { _ in throttle.failed(attacker) }
        #expect(delays.prefix(3).allSatisfy { $0 == .zero })
        #expect(delays[3] == .milliseconds(250) && delays[4] == .milliseconds(500) && delays[8] == .milliseconds(4000))
        #expect(throttle.verdict(attacker) == .allow)
        _ = throttle.failed(attacker)
        guard case .locked(let seconds) = throttle.verdict(attacker) else { Issue.record("not locked"); return }
        #expect(seconds > 0 && seconds <= 61)
        #expect(throttle.verdict(idp) == .allow)
        throttle.succeeded(idp)
        #expect(throttle.verdict(AuthThrottle.Key(address: "203.0.113.9", credential: "basic other")) == .allow)
    }

    @Test func theProbeSaysWhatTheRelayAnswered() throws {
        let accepted = UplinkProbe.read(status: 200, try JSON.parse(#"{"relay":"dmz1","agent":"dc1-a","apps":["hr"],"unknown":[]}"#))
        #expect(accepted.ok && accepted.detail == "accepted as dc1-a by relay dmz1; serves hr")
        let partly = UplinkProbe.read(status: 200, try JSON.parse(#"{"relay":"dmz1","agent":"dc1-a","apps":["hr"],"unknown":["crm"]}"#))
        #expect(!partly.ok && partly.unknown == ["crm"] && partly.detail.contains("has no configuration for crm"))
        let refused = UplinkProbe.read(status: 401, try JSON.parse(#"{"status":"401","detail":"unknown agent or wrong token"}"#))
        #expect(!refused.ok && refused.detail == "the relay refused this agent: 401 unknown agent or wrong token")
        #expect(UplinkProbe.read(status: 404, nil).detail.contains("is this URL a provisioning-agent relay?"))
        #expect(!UplinkProbe.read(status: 200, try JSON.parse("{}")).ok)
    }
}
