import Foundation
import Testing
@testable import AgentCore
import SCIMKit

@Suite struct ConfigTests {
    func parse(_ yaml: String, env: [String: String] = [:]) throws -> AgentConfig {
        try AgentConfig.parse(yaml, file: "/etc/agent/agent.yaml", environment: env)
    }

    func problems(_ yaml: String, env: [String: String] = [:]) -> [String] {
        do { _ = try parse(yaml, env: env); return [] } catch let e as AgentConfig.Invalid { return e.problems.map(\.description) } catch { return ["\(error)"] }
    }

    @Test func theDesignDocumentExample() throws {
        let c = try parse("""
            server:
              listen: 127.0.0.1:8443
            plugins:
              directory: ../plugins
            apps:
              hr:
                connector: flatfile
                settings:
                  directory: ../data/hr
                auth: { type: basic, username: okta, password: "${HR_PASSWORD}" }
              crm:
                connector: memory
                auth: { type: header, name: Authorization, value: "Bearer abc" }
            """, env: ["HR_PASSWORD": "pw"])
        #expect(c.server.host == "127.0.0.1" && c.server.port == 8443)
        #expect(c.pluginsDirectory == "/etc/plugins")  // relative to the config file
        #expect(c.apps["hr"]?.auth == .basic(username: "okta", password: "pw"))
        #expect(c.apps["hr"]?.target == .connector(name: "flatfile", settings: ["directory": "../data/hr"]))
        #expect(c.apps["crm"]?.auth == .header(name: "Authorization", value: "Bearer abc"))
        #expect(c.server.maxBodySize == 1 << 20)
    }

    @Test func everyProblemIsNamedWithFileAndKey() {
        let p = problems("""
            server:
              listen: "localhost"
              tls: { certificate: nope.pem }
            extra: 1
            apps:
              "bad name":
                connector: x
                auth: { type: none }
              hr:
                connector: flatfile
                auth: { type: basic, username: u, password: "${MISSING}" }
              noauth:
                connector: memory
            """)
        #expect(p.contains { $0.hasPrefix("/etc/agent/agent.yaml: server.listen:") })
        #expect(p.contains { $0.hasPrefix("/etc/agent/agent.yaml: server.tls.privateKey: is required") })
        #expect(p.contains { $0.hasPrefix("/etc/agent/agent.yaml: extra: unknown key") })
        #expect(p.contains { $0.hasPrefix("/etc/agent/agent.yaml: apps.bad name:") })
        #expect(p.contains { $0.contains("apps.hr.auth.password: environment variable MISSING is not set") })
        #expect(p.contains { $0.contains("apps.noauth.auth: is required") })
    }

    @Test func inlineSecretsAreNamedAndSecretsFromTheEnvironmentAreNot() throws {
        let c = try parse("""
            apps:
              hr:
                connector: mysql
                settings: { host: db, password: inline, bindPassword: "${LDAP_PW}" }
                auth: { type: basic, username: okta, password: "${HR_PASSWORD}" }
              crm:
                connector: memory
                auth: { type: header, name: Authorization, value: "Bearer abc" }
              up:
                remote:
                  url: https://scim.example.com/v2
                  auth: { type: oauth2, tokenURL: https://idp.example.com/token, clientID: agent, clientSecret: s }
                auth: { type: none }
            """, env: ["HR_PASSWORD": "pw", "LDAP_PW": "pw2"])
        #expect(c.inlineSecrets.sorted() == ["apps.crm.auth.value", "apps.hr.settings.password", "apps.up.remote.auth.clientSecret"])
    }

    @Test func theEnvironmentFileBesideTheConfigurationSuppliesUnsetVariables() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("config-env-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "apps:\n  hr:\n    connector: memory\n    auth: { type: basic, username: okta, password: \"${HR_PW}\" }\n  crm:\n    connector: memory\n    auth: { type: header, name: X-Key, value: \"${CRM_KEY}\" }\n"
            .write(toFile: dir + "/agent.yaml", atomically: true, encoding: .utf8)
        try "# secrets\nHR_PW=from-file\n CRM_KEY = 'quoted value' \nnot a line\n".write(toFile: dir + "/environment", atomically: true, encoding: .utf8)
        let c = try AgentConfig.load(path: dir + "/agent.yaml", environment: [:])
        #expect(c.apps["hr"]?.auth == .basic(username: "okta", password: "from-file"))
        #expect(c.apps["crm"]?.auth == .header(name: "X-Key", value: "quoted value"))
        let overridden = try AgentConfig.load(path: dir + "/agent.yaml", environment: ["HR_PW": "from-env"])
        #expect(overridden.apps["hr"]?.auth == .basic(username: "okta", password: "from-env"))
        #expect(overridden.inlineSecrets.isEmpty)
    }

    @Test func metricsAndStatusEndpoints() throws {
        let c = try parse("""
            server:
              metrics: { listen: 127.0.0.1:9464, auth: { type: header, name: Authorization, value: "Bearer m" } }
              status: { auth: { type: basic, username: admin, password: "${STATUS_PW}" } }
            """, env: ["STATUS_PW": "pw"])
        #expect(c.server.metrics && c.server.metricsListen == .init(host: "127.0.0.1", port: 9464))
        #expect(c.server.metricsAuth == .header(name: "Authorization", value: "Bearer m"))
        #expect(c.server.statusAuth == .basic(username: "admin", password: "pw"))
        let defaults = try parse("apps: {}\n")
        #expect(defaults.server.metrics && defaults.server.metricsListen == nil && defaults.server.metricsAuth == nil && defaults.server.statusAuth == nil)
        #expect(try parse("server: { metrics: false }\n").server.metrics == false)
        let p = problems("""
            server:
              listen: 127.0.0.1:8080
              metrics: { listen: 127.0.0.1:8080, port: 1, auth: { type: magic } }
              status: { auth: 3 }
            """)
        #expect(p.contains("/etc/agent/agent.yaml: server.metrics.listen: is the agent's own listener: leave listen out to serve /metrics there"))
        #expect(p.contains { $0.contains("server.metrics.port: unknown key") })
        #expect(p.contains { $0.contains("server.metrics.auth.type: \"magic\" is not one of") })
        #expect(p.contains("/etc/agent/agent.yaml: server.status.auth: must be a mapping"))
        #expect(problems("server: { metrics: 1 }\n") == ["/etc/agent/agent.yaml: server.metrics: must be true, false or { listen, auth }"])
    }

    /// Found by the fuzzer: Yams traps on a key that is not a scalar.
    @Test func anUplinkOnlyAgentOpensNoPortAndItsAppsNeedNoAuth() throws {
        let c = try parse("""
            uplink: { url: "https://relay.example.com:8443", name: dc1-a, token: "${T}", proxy: "http://u:p%40ss@proxy.corp:3128" }
            apps:
              hr: { connector: memory }
            """, env: ["T": "secret-token"])
        #expect(!c.server.listens && c.apps["hr"]?.auth == AgentConfig.Auth.none)
        #expect(c.uplink == AgentConfig.Uplink(
            urls: ["wss://relay.example.com:8443/uplink"], name: "dc1-a", token: "secret-token", caFile: nil,
            proxy: .init(host: "proxy.corp", port: 3128, username: "u", password: "p@ss")))
        #expect(c.inlineSecrets == ["uplink.proxy"])
        // With a listen, apps need their auth as before.
        #expect(problems("""
            server: { listen: 127.0.0.1:8080 }
            uplink: { url: "https://relay.example.com", name: a, token: t }
            apps: { hr: { connector: memory } }
            """).contains { $0.contains("apps.hr.auth: is required") })
    }

    @Test func uplinkProblemsAreNamed() {
        let p = problems("""
            server: { tls: { certificate: c.pem, privateKey: k.pem } }
            uplink: { urls: ["http://relay.example.com", "https://10.0.0.5:8443", "ftp://x"], name: "a b", proxy: "socks5://p:1", heartbeatSeconds: 0 }
            apps: {}
            """)
        for expected in [
            "uplink.urls[0]: plain http:// is only allowed to a loopback address",
            "uplink.urls[1]: name the relay by a DNS name",
            "uplink.urls[2]: \"ftp://x\" is not a relay URL",
            "uplink.name: must be printable ASCII",
            "uplink.token: is required",
            "uplink.proxy: \"socks5://p:1\" is not an HTTP proxy URL",
            "uplink.heartbeatSeconds: must be a number of seconds",
            "server.tls: applies to server.listen, which is not set",
        ] {
            #expect(p.contains { $0.contains(expected) }, "\(expected) in \(p)")
        }
        #expect(problems("uplink: { url: a, urls: [b], name: n, token: t }").contains { $0.contains("uplink: give either url or urls") })
    }

    @Test func relayConfiguration() throws {
        let c = try RelayConfig.parse("""
            relay:
              listen: 0.0.0.0:8443
              tls: { certificate: /etc/hosts, privateKey: /etc/hosts }
              agents:
                - { name: dc1-a, token: "${A}" }
              limits: { maxInFlightPerApp: 8, requestTimeout: 5 }
            apps:
              hr: { auth: { type: basic, username: okta, password: "${P}" } }
            """, file: "/etc/relay.yaml", environment: ["A": "0123456789abcdef0123", "P": "pw"])
        #expect(c.port == 8443 && c.agents == [.init(name: "dc1-a", token: "0123456789abcdef0123")])
        #expect(c.limits.maxInFlightPerApp == 8 && c.limits.requestTimeout == 5 && c.limits.maxBodySize == 1 << 20)
        #expect(c.apps["hr"] == .basic(username: "okta", password: "pw") && c.inlineSecrets.isEmpty)
        #expect(c.trustedProxies.isEmpty)
        var problems: [String] = []
        do {
            _ = try RelayConfig.parse("""
                relay:
                  listen: 0.0.0.0:8443
                  agents: [{ name: a, token: short }, { name: a, token: "0123456789abcdef" }]
                  limits: { maxInFlightPerApp: 0 }
                  trustedProxies: [10.0.0.0/8, 10.0.0.0/40, lb.example.com]
                apps:
                  hr: {}
                  "h r": { auth: { type: none } }
                """, file: "/etc/relay.yaml", environment: [:])
        } catch let e as AgentConfig.Invalid { problems = e.problems.map(\.description) }
        for expected in [
            "/etc/relay.yaml: relay.tls: is required unless relay.listen is a loopback address",
            "relay.agents[0].token: must be at least 16 characters", "relay.agents[1].name: a is listed twice",
            "relay.limits.maxInFlightPerApp: must be a whole number, at least 1", "apps.hr.auth: is required",
            "apps.h r: app names may use letters, digits, '-' and '_' only",
            "relay.trustedProxies[1]: \"10.0.0.0/40\" is not an IP address or a CIDR range", "relay.trustedProxies[2]: \"lb.example.com\"",
        ] {
            #expect(problems.contains { $0.contains(expected) }, "\(expected) in \(problems)")
        }
    }

    @Test func aKeyThatIsNotAStringIsAProblemNotATrap() {
        #expect(problems("server:\n  ? [a, b]\n  : 1\n") == ["/etc/agent/agent.yaml: line 2: a key under server must be a plain string"])
        #expect(problems("? {a: 1}\n: x\n").first?.contains("a key must be a plain string") == true)
    }

    @Test func unknownAttributesPolicy() throws {
        let base = "plugins: { directory: p }\napps:\n  hr: { connector: memory, auth: { type: none }"
        #expect(try parse(base + " }\n").apps["hr"]?.unknownAttributes == .ignore)
        #expect(try parse(base + ", unknownAttributes: reject }\n").apps["hr"]?.unknownAttributes == .reject)
        #expect(problems(base + ", unknownAttributes: drop }\n") == [#"/etc/agent/agent.yaml: apps.hr.unknownAttributes: "drop" is not one of ignore, reject"#])
    }

    @Test func scalarsResolveByTheCoreSchemaAndQuotesMakeStrings() throws {
        let c = try parse("""
            server: { listen: "127.0.0.1:8080", maxBodySize: 2048 }
            apps:
              a: &app { connector: memory, auth: { type: none }, settings: { n: 7, x: 1.5, on: true, off: False, nothing: ~, zip: "01234", word: yes } }
              b: *app
            """)
        #expect(c.server.maxBodySize == 2048)
        #expect(c.appNames == ["a", "b"])
        guard case .connector(_, let settings)? = c.apps["b"]?.target else { Issue.record("no settings"); return }
        #expect(settings["n"] == 7 && settings["x"] == 1.5 && settings["on"] == true && settings["off"] == false)
        #expect(settings["nothing"] == .null)
        #expect(settings["zip"] == "01234" && settings["word"] == "yes")  // quoted, and YAML 1.1's "yes" is just a word
        #expect(problems("server: { maxBodySize: \"4096\" }\napps: {}\n").first?.contains("server.maxBodySize: must be a number") == true)
    }

    @Test func invalidYAML() {
        #expect(problems("apps: [unclosed").first?.contains("not valid YAML") == true)
    }

    @Test(arguments: ["127.0.0.1:0", "127.0.0.1:70000", ":80", "host", "[::1]:x"])
    func badListenAddresses(_ listen: String) {
        #expect(!problems("server:\n  listen: \"\(listen)\"\n").isEmpty)
    }

    @Test func ipv6Listen() throws {
        let c = try parse("server:\n  listen: \"[::1]:8080\"\n")
        #expect(c.server.host == "::1" && c.server.port == 8080)
    }
}

@Suite struct MemberDeltaTests {
    func ops(_ text: String) throws -> [PatchOperation] {
        try PatchRequest(json: JSON.parse(#"{"Operations":"# + text + "}")).operations
    }

    @Test func addsAndRemovesBecomeDeltas() throws {
        let (deltas, rest) = MemberDeltas.split(try ops(#"""
            [{"op":"add","path":"members","value":[{"value":"u1","type":"User"},{"value":"u2"}]},
             {"op":"remove","path":"members[value eq \"u3\" or value eq \"u4\"]"},
             {"op":"Remove","path":"members","value":[{"value":"u5"}]},
             {"op":"replace","path":"displayName","value":"New"}]
            """#))
        #expect(deltas.map(\.add) == [true, false, false])
        #expect(deltas.map { $0.members.compactMap { $0["value"]?.stringValue } } == [["u1", "u2"], ["u3", "u4"], ["u5"]])
        #expect(rest.count == 1 && rest[0].path?.text == "displayName")
    }

    @Test func replacingAllMembersIsNotADelta() throws {
        let original = try ops(#"[{"op":"add","path":"members","value":[{"value":"u1"}]},{"op":"replace","path":"members","value":[]}]"#)
        let (deltas, rest) = MemberDeltas.split(original)
        #expect(deltas.isEmpty && rest == original)
    }
}

@Suite struct CapabilityTests {
    @Test func restrictingTheSchemaToWhatAConnectorStores() {
        let s = CapabilityDiscovery.restrict(CoreSchemas.userResource, to: ["userName", "name.givenName", "emails", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"])
        #expect(s.core.attributes.map(\.name) == ["userName", "name", "emails"])
        #expect(s.core.attribute("name")?.subAttributes.map(\.name) == ["givenName"])
        #expect(s.extensions.map { $0.attributes.map(\.name) } == [["department"]])
    }
}
