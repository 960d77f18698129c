import Foundation
import SCIMKit

/// The configuration of `provisioning-agent relay` (README, "Outbound only: the relay"): where
/// it listens, which agents may connect, and each app's client authentication. It holds no
/// provisioning data. Problems are reported like the agent's, naming the file and the key.
public struct RelayConfig: Sendable, Equatable {
    /// An agent allowed to connect, by its name and token (compared in constant time).
    public struct Agent: Sendable, Equatable {
        public var name: String
        public var token: String
    }

    public struct Limits: Sendable, Equatable {
        /// Bytes of a client's request body.
        public var maxBodySize = 1 << 20
        /// Client requests of one app in flight at once; more are answered 429.
        public var maxInFlightPerApp = 256
        /// Uplink connections at once, all agents together.
        public var maxAgentConnections = 64
        /// Client connections at once; more are closed as they are accepted.
        public var maxClientConnections = 1024
        /// Seconds an agent has to answer a request before the client gets 504.
        public var requestTimeout: Double = 60
    }

    public var file: String
    public var host: String
    public var port: Int
    public var tls: AgentConfig.TLS?
    public var agents: [Agent]
    /// `relay.admin`: the credential `/agents` asks for; nil serves it to loopback clients only.
    public var admin: AgentConfig.Auth?
    public var limits = Limits()
    /// Seconds between the relay's heartbeats to each agent.
    public var heartbeat: Double = 5
    /// `relay.trustedProxies`: load balancers or reverse proxies whose `X-Forwarded-For` names
    /// the client (for the authentication throttle, loopback-only endpoints and audit lines).
    public var trustedProxies: [AddressRange] = []
    /// Each app's client authentication.
    public var apps: [String: AgentConfig.Auth]
    public var inlineSecrets: [String] = []

    public var appNames: [String] { apps.keys.sorted() }

    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RelayConfig {
        let (text, file, environment) = try AgentConfig.readFile(path: path, environment: environment)
        return try parse(text, file: file, environment: environment)
    }

    public static func parse(_ text: String, file: String, environment: [String: String]) throws -> RelayConfig {
        var reader = ConfigReader(file: file, environment: environment)
        let root = try AgentConfig.yamlRoot(text, file: file)
        let config = reader.readRelay(root)
        guard reader.problems.isEmpty, let config else { throw AgentConfig.Invalid(problems: reader.problems) }
        return config
    }
}

extension ConfigReader {
    mutating func readRelay(_ root: Any?) -> RelayConfig? {
        guard let top = map(root ?? [String: Any](), "", allowed: ["relay", "apps"]) else { return nil }
        guard let relay = map(top["relay"], "relay", allowed: ["listen", "tls", "agents", "admin", "limits", "heartbeatSeconds", "trustedProxies"]) else {
            problem("relay", "is required: { listen, tls, agents }")
            return nil
        }
        var host = "0.0.0.0", port = 8443, listenRead = true
        if let listen = string(relay, "listen", "relay") {
            if let (h, p) = Self.hostPort(listen) { (host, port) = (h, p) } else {
                problem("relay.listen", "\"\(listen)\" is not host:port with a port from 1 to 65535")
                listenRead = false
            }
        }
        let tls = readTLS(relay["tls"], "relay.tls")
        if tls == nil, relay["tls"] == nil, listenRead, !Self.isLoopback(host) {
            problem("relay.tls", "is required unless relay.listen is a loopback address: the relay faces the internet")
        }
        var agents: [RelayConfig.Agent] = []
        if let list = relay["agents"] as? [Any], !list.isEmpty {
            for (i, item) in list.enumerated() {
                let key = "relay.agents[\(i)]"
                guard let m = map(item, key, allowed: ["name", "token"]), let name = string(m, "name", key), let token = string(m, "token", key) else { continue }
                if token.utf8.count < 16, !problems.contains(where: { $0.key == "\(key).token" }) { problem("\(key).token", "must be at least 16 characters (openssl rand -hex 32 makes one)") }
                if agents.contains(where: { $0.name == name }) { problem("\(key).name", "\(name) is listed twice") }
                agents.append(.init(name: name, token: token))
            }
        } else {
            problem("relay.agents", "must list the agents that may connect: - { name, token }")
        }
        let admin = relay["admin"] == nil ? nil : readAuth(relay["admin"], "relay.admin")
        var limits = RelayConfig.Limits()
        if let m = map(relay["limits"], "relay.limits", allowed: ["maxBodySize", "maxInFlightPerApp", "maxAgentConnections", "maxClientConnections", "requestTimeout"]) {
            func whole(_ k: String, _ minimum: Int) -> Int? {
                guard let v = m[k] else { return nil }
                if let n = v as? Int, n >= minimum { return n }
                problem("relay.limits.\(k)", "must be a whole number, at least \(minimum)")
                return nil
            }
            if let n = whole("maxBodySize", 1024) { limits.maxBodySize = n }
            if let n = whole("maxInFlightPerApp", 1) { limits.maxInFlightPerApp = n }
            if let n = whole("maxAgentConnections", 1) { limits.maxAgentConnections = n }
            if let n = whole("maxClientConnections", 1) { limits.maxClientConnections = n }
            if let v = m["requestTimeout"] {
                if let n = (v as? Double) ?? (v as? Int).map(Double.init), n > 0, n <= 3600 { limits.requestTimeout = n } else {
                    problem("relay.limits.requestTimeout", "must be a number of seconds from 0 to 3600")
                }
            }
        }
        var heartbeat = 5.0
        if let v = relay["heartbeatSeconds"] {
            if let n = (v as? Double) ?? (v as? Int).map(Double.init), n >= 0.2, n <= 300 { heartbeat = n } else {
                problem("relay.heartbeatSeconds", "must be a number of seconds from 0.2 to 300")
            }
        }
        var trustedProxies: [AddressRange] = []
        if let v = relay["trustedProxies"] {
            if let list = v as? [Any] {
                for (i, item) in list.enumerated() {
                    if let text = item as? String, let range = AddressRange(text) { trustedProxies.append(range) } else {
                        problem("relay.trustedProxies[\(i)]", "\"\(item)\" is not an IP address or a CIDR range such as 10.0.0.0/8")
                    }
                }
            } else {
                problem("relay.trustedProxies", "must be a list of IP addresses or CIDR ranges")
            }
        }
        var apps: [String: AgentConfig.Auth] = [:]
        if let appsMap = top["apps"] as? [String: Any], !appsMap.isEmpty {
            for name in appsMap.keys.sorted() {
                let key = "apps.\(name)"
                guard checkAppName(name, key), let app = map(appsMap[name], key, allowed: ["auth"]) else { continue }
                if let auth = readAuth(app["auth"], "\(key).auth") { apps[name] = auth }
            }
        } else {
            problem("apps", "must name the apps the relay serves, each with its client auth")
        }
        return RelayConfig(
            file: file, host: host, port: port, tls: tls, agents: agents, admin: admin, limits: limits, heartbeat: heartbeat,
            trustedProxies: trustedProxies, apps: apps, inlineSecrets: inlineSecrets)
    }
}
