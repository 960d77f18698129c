import Foundation
import NIOCore
import HTTPTypes
import Testing
@testable import AgentHTTP
import SCIMKit

@Suite struct HTTPHelperTests {
    @Test func constantTimeComparison() {
        #expect(ConstantTime.equals(Array("secret".utf8), Array("secret".utf8)))
        #expect(!ConstantTime.equals(Array("secreT".utf8), Array("secret".utf8)))
        #expect(!ConstantTime.equals(Array("secret1".utf8), Array("secret".utf8)))
        #expect(!ConstantTime.equals([], Array("secret".utf8)))
        #expect(!ConstantTime.equals(Array("s".utf8), []))
        #expect(ConstantTime.equals([], []))
    }

    @Test func operationsFromMethodAndPath() {
        let cases: [(HTTPRequest.Method, String, String)] = [
            (.get, "/apps/hr/scim/v2/Users/42", "get"), (.get, "/apps/hr/scim/v2/Users", "list"), (.get, "/apps/hr/scim/v2/Users/", "list"),
            (.post, "/apps/hr/scim/v2/Users", "create"), (.post, "/apps/hr/scim/v2/Groups/.search", "search"),
            (.post, "/apps/hr/scim/v2/.search", "search"), (.put, "/apps/hr/scim/v2/Groups/g1", "replace"),
            (.patch, "/apps/hr/scim/v2/Users/42", "patch"), (.delete, "/apps/hr/scim/v2/Users/42", "delete"),
            (.post, "/apps/hr/scim/v2/Bulk", "bulk"), (.get, "/apps/hr/scim/v2/Schemas/urn:x", "discovery"),
            (.get, "/apps/hr/scim/v1/ServiceProviderConfigs", "discovery"), (.get, "/apps/hr/scim", "other"), (.get, "", "other"),
            (.get, "//apps//hr/scim/v2/Users/7", "get"), (.head, "/apps/hr/scim/v2/Users", "other"),
        ]
        for (method, path, expected) in cases {
            #expect(MetricsMiddleware.operation(method, path) == expected, "\(method) \(path)")
        }
    }

    @Test func loopbackClients() {
        #expect(AgentRequestContext.isLoopback("127.0.0.1"))
        #expect(AgentRequestContext.isLoopback("127.8.0.3"))
        #expect(AgentRequestContext.isLoopback("::1"))
        #expect(!AgentRequestContext.isLoopback("10.0.0.7"))
        #expect(!AgentRequestContext.isLoopback("::2"))
    }

    @Test func requestTotalsPerAppFromThePrometheusText() {
        let totals = RequestRates.totals("""
            # TYPE provisioning_requests_total counter
            provisioning_requests_total{app="hr",method="POST",status="201"} 12
            provisioning_requests_total{app="hr",method="GET",status="503"} 3
            provisioning_requests_total{app="crm",method="GET",status="200"} 5
            provisioning_request_duration_seconds_count{app="hr",operation="create"} 99
            """)
        #expect(totals["hr"]?.requests == 15 && totals["hr"]?.failed == 3)
        #expect(totals["crm"]?.requests == 5 && totals["crm"]?.failed == 0)
        #expect(totals.count == 2)
    }

    @Test func basicCredentials() {
        let header = "Basic " + Data("okta:change-me".utf8).base64EncodedString()
        #expect(AuthenticationMiddleware.checkBasic(header, username: "okta", password: "change-me"))
        #expect(!AuthenticationMiddleware.checkBasic(header, username: "okta", password: "change-mE"))
        #expect(!AuthenticationMiddleware.checkBasic("Bearer x", username: "okta", password: "change-me"))
        #expect(!AuthenticationMiddleware.checkBasic("Basic !!!", username: "okta", password: "change-me"))
    }

    @Test func queryStrings() throws {
        let q = try QueryString.parse("filter=userName+eq+%22a%2Bb%40x.com%22&count=10&count=20&empty")
        #expect(q["filter"] == #"userName eq "a+b@x.com""#)
        #expect(q["count"] == "10" && q["empty"] == "")
        #expect(try QueryString.parse("filter=displayName+eq+%22J%C3%BCrgen%22")["filter"] == #"displayName eq "Jürgen""#)
    }

    @Test func queryStringsThatAreNotUTF8() {
        func error(_ query: String) -> SCIMError? {
            do { _ = try QueryString.parse(query); return nil } catch { return error }
        }
        #expect(error("filter=userName%20eq%20%22%FF%22") == .invalidFilter("the query parameter filter is not UTF-8 once percent-decoded"))
        #expect(error("attributes=%C3")?.scimType == .invalidValue)
        #expect(error("%FF=1")?.status == 400)
    }

    @Test func appsAndDialectsFromThePath() {
        #expect(AppPathMiddleware.parse("/apps/hr/scim/v2/Users") == ("hr", .v2))
        #expect(AppPathMiddleware.parse("/apps/hr/scim/v1/Users") == ("hr", .v1))
        #expect(AppPathMiddleware.parse("/apps/hr/scim/v1") == ("hr", .v1))
        #expect(AppPathMiddleware.parse("/apps/hr/scim/v10/Users") == ("hr", .v2))
        #expect(AppPathMiddleware.parse("/healthz") == ("", .v2))
        #expect(AppPathMiddleware.parse("/apps/") == ("", .v2))
    }
}
