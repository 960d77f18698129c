import Foundation
import Testing
@testable import AgentHTTP

@Suite struct HTTPHelperTests {
    @Test func constantTimeComparison() {
        #expect(ConstantTime.equals(Array("secret".utf8), Array("secret".utf8)))
        #expect(!ConstantTime.equals(Array("secreT".utf8), Array("secret".utf8)))
        #expect(!ConstantTime.equals(Array("secret1".utf8), Array("secret".utf8)))
        #expect(!ConstantTime.equals([], Array("secret".utf8)))
        #expect(!ConstantTime.equals(Array("s".utf8), []))
        #expect(ConstantTime.equals([], []))
    }

    @Test func basicCredentials() {
        let header = "Basic " + Data("okta:change-me".utf8).base64EncodedString()
        #expect(AuthenticationMiddleware.checkBasic(header, username: "okta", password: "change-me"))
        #expect(!AuthenticationMiddleware.checkBasic(header, username: "okta", password: "change-mE"))
        #expect(!AuthenticationMiddleware.checkBasic("Bearer x", username: "okta", password: "change-me"))
        #expect(!AuthenticationMiddleware.checkBasic("Basic !!!", username: "okta", password: "change-me"))
    }

    @Test func queryStrings() {
        let q = QueryString.parse("filter=userName+eq+%22a%2Bb%40x.com%22&count=10&count=20&empty")
        #expect(q["filter"] == #"userName eq "a+b@x.com""#)
        #expect(q["count"] == "10" && q["empty"] == "")
    }

    @Test func appNames() {
        #expect(AuthenticationMiddleware.appName("/apps/hr/scim/v2/Users") == "hr")
        #expect(AuthenticationMiddleware.appName("/healthz") == nil)
        #expect(AuthenticationMiddleware.appName("/apps/") == nil)
    }
}
