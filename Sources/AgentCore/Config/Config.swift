import Foundation
import SCIMKit
import Yams

/// The agent's configuration (DESIGN.md, "Configuration"), validated as a whole: every problem
/// is reported with the file and the key.
public struct AgentConfig: Sendable, Equatable {
    public struct TLS: Sendable, Equatable {
        public var certificate: String
        public var privateKey: String
    }

    public struct Server: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var tls: TLS?
        public var maxBodySize: Int
        /// `server.metrics: false` turns `/metrics` and the collection behind it off.
        public var metrics = true
        /// `server.metrics: { listen, auth }`: where `/metrics` is served (nil: on the agent's
        /// own listener) and the credential it asks for (nil: none).
        public var metricsListen: Listen?
        public var metricsAuth: Auth?
        /// `server.status.auth`: the credential `/status` asks for; nil serves it to loopback
        /// clients only.
        public var statusAuth: Auth?
        /// False when `server.listen` is left out of a configuration with an `uplink`: the
        /// agent then opens no port and answers only what its relays hand it.
        public var listens = true
    }

    /// `uplink:`: the relays the agent dials out to (README, "Outbound only: the relay").
    public struct Uplink: Sendable, Equatable {
        /// `wss://host:port/uplink` (or `ws://` to a loopback address), one per relay.
        public var urls: [String]
        public var name: String
        public var token: String
        public var caFile: String?
        public var proxy: Proxy?
        /// Seconds between heartbeats; a connection silent for three of them is dropped.
        public var heartbeat: Double = 5
    }

    /// An HTTP proxy reached with CONNECT, with optional basic credentials.
    public struct Proxy: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String?
        public var password: String?
    }

    public struct Listen: Sendable, Equatable {
        public var host: String
        public var port: Int
    }

    public enum Auth: Sendable, Equatable {
        case none
        case basic(username: String, password: String)
        case header(name: String, value: String)
    }

    public enum Target: Sendable, Equatable {
        case connector(name: String, settings: JSON)
        case remote(Remote)
    }

    /// A remote SCIM server an app forwards to.
    public struct Remote: Sendable, Equatable {
        public enum Auth: Sendable, Equatable {
            case none
            case basic(username: String, password: String)
            case header(name: String, value: String)
            /// OAuth 2.0 client credentials: a token fetched, cached until expiry, refreshed once on a 401.
            case oauth2(tokenURL: String, clientID: String, clientSecret: String, scope: String?)
        }
        public var url: String
        public var auth: Auth
        public var caFile: String?
        public var connectTimeout: Double
        public var requestTimeout: Double
        public var retries: Int
        public var breakerThreshold: Int
        public var breakerCooldown: Double
    }

    public struct App: Sendable, Equatable {
        public var name: String
        public var target: Target
        public var auth: Auth
        public var unknownAttributes: UnknownAttributes = .ignore
        /// Where the app's connector runs (`apps.<app>.isolation`).
        public var isolation: Isolation = .inProcess
        /// For `isolation: process`: the child's deadline and limits (`apps.<app>.process`).
        public var process = ProcessOptions()
        /// `apps.<app>.guard`: the deletion guard's thresholds (`DeletionGuard`); off when nil.
        public var deletionGuard = GuardLimits()
    }

    /// `audit: { file, maxSizeMiB, keep }`.
    public struct Audit: Sendable, Equatable {
        /// A path, or "-" for standard output.
        public var file: String
        public var maxSize: Int = 10 << 20
        public var keep: Int = 5
    }

    public struct GuardLimits: Sendable, Equatable {
        public var maxDeletesPerHour: Int?
        public var maxDeactivationsPerHour: Int?
        public init(maxDeletesPerHour: Int? = nil, maxDeactivationsPerHour: Int? = nil) {
            self.maxDeletesPerHour = maxDeletesPerHour
            self.maxDeactivationsPerHour = maxDeactivationsPerHour
        }
    }

    /// `in-process` (the default): the connector is loaded into the agent, the fastest path,
    /// and a crash in it stops the agent. `process`: it runs in a child process of its own
    /// (`IsolatedConnector`); a crash or a hang fails only that app's calls in flight.
    public enum Isolation: String, Sendable, Equatable {
        case inProcess = "in-process"
        case process
    }

    public struct ProcessOptions: Sendable, Equatable {
        /// Seconds one call may take before the child is killed.
        public var callTimeout: Double = 30
        /// RLIMIT_AS of the child, in bytes (address space, not resident memory).
        public var memoryLimit: Int?
        /// RLIMIT_NOFILE of the child.
        public var openFiles: Int?
        public init() {}
    }

    /// What becomes of an attribute the app's target cannot hold (`apps.<app>.unknownAttributes`).
    public enum UnknownAttributes: String, Sendable, Equatable {
        /// Accepted without it, and logged once per attribute name: IdPs send more than most
        /// targets keep (Okta's locale, timezone, its custom extension).
        case ignore
        /// 400 invalidValue naming the attribute.
        case reject
    }

    public var file: String
    public var directory: String
    public var server: Server
    public var pluginsDirectory: String
    /// `plugins.trust.publicKeys`: PEM files of the Ed25519 keys one of which must have
    /// signed every plugin (`name.so.sig`); empty when plugins need no signature.
    public var trustedKeys: [String] = []
    /// `audit:`; nil when no audit log is kept (`AuditLog`).
    public var audit: Audit?
    /// `runtimeDirectory:`: where the running agent publishes its status and takes `guard
    /// release` requests (`RuntimePaths.stateDirectory`); nil for its private directory.
    public var runtimeDirectory: String?
    public var apps: [String: App]
    /// `uplink:`; nil when the agent dials no relay.
    public var uplink: Uplink?
    /// The keys whose secret is written in the file itself rather than read from `${ENV}`.
    public var inlineSecrets: [String] = []

    /// Warnings when secrets may be read by other users (the `serve` log and `check` print
    /// them): the file holds an inline secret and others may read it, or the `environment`
    /// file beside it does. Group read is left alone: the package installs both
    /// `0640 root:provisioning-agent`.
    public var exposedSecretsWarnings: [String] { Self.exposedSecretsWarnings(file: file, inlineSecrets: inlineSecrets) }

    /// The same for any configuration file (the relay's too).
    public static func exposedSecretsWarnings(file: String, inlineSecrets: [String]) -> [String] {
        func mode(_ path: String) -> mode_t? {
            var info = stat()
            return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
        }
        var warnings: [String] = []
        if !inlineSecrets.isEmpty, let m = mode(file), m & 0o004 != 0 {
            let keys = inlineSecrets.prefix(5).joined(separator: ", ") + (inlineSecrets.count > 5 ? ", …" : "")
            warnings.append("\(file) is readable by other users (mode 0\(String(m, radix: 8))) and holds secrets in the file (\(keys)): chmod o-r it, or write them as ${NAME} and set them in the environment")
        }
        let environment = environmentFilePath(beside: file)
        if let m = mode(environment), m & 0o004 != 0 {
            warnings.append("\(environment) is readable by other users (mode 0\(String(m, radix: 8))): chmod o-r it, it holds the secrets of the configuration")
        }
        return warnings
    }

    public var appNames: [String] { apps.keys.sorted() }

    /// What is wrong with a configuration: each problem names the file, the key (when one
    /// is to blame) and what is wrong with it.
    public struct Invalid: Error, CustomStringConvertible {
        public var problems: [Problem]
        public var description: String { problems.map(\.description).joined(separator: "\n") }
    }

    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var file: String
        /// The dotted key (`apps.hr.auth.type`), or nil for the file as a whole.
        public var key: String?
        public var message: String

        public init(file: String, key: String? = nil, _ message: String) {
            self.file = file
            self.key = key
            self.message = message
        }

        public var description: String { key.map { "\(file): \($0): \(message)" } ?? "\(file): \(message)" }
    }

    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AgentConfig {
        let (text, file, environment) = try readFile(path: path, environment: environment)
        return try parse(text, file: file, environment: environment)
    }

    /// The text of a configuration file, its absolute path, and the environment its
    /// `${NAME}`s read (with the `environment` file beside it).
    static func readFile(path: String, environment: [String: String]) throws -> (String, String, [String: String]) {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw Invalid(problems: [Problem(file: path, "cannot read the configuration file (\(error.localizedDescription))")])
        }
        return (text, url.path, environment.merging(environmentFile(beside: url.path)) { given, _ in given })
    }

    /// `NAME=value` lines of the file `environment` beside the configuration, if there is one
    /// (the package's unit reads the same file as its EnvironmentFile): the commands an admin
    /// runs by hand see the secrets the service sees. Variables already set win.
    static func environmentFilePath(beside file: String) -> String {
        URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("environment").path
    }

    static func environmentFile(beside file: String) -> [String: String] {
        let path = environmentFilePath(beside: file)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var out: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), let eq = trimmed.firstIndex(of: "=") else { continue }
            var value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q { value = String(value.dropFirst().dropLast()) }
            out[trimmed[..<eq].trimmingCharacters(in: .whitespaces)] = value
        }
        return out
    }

    public static func parse(_ text: String, file: String, environment: [String: String]) throws -> AgentConfig {
        var reader = ConfigReader(file: file, environment: environment)
        let root = try yamlRoot(text, file: file)
        let config = reader.read(root)
        guard reader.problems.isEmpty, let config else { throw Invalid(problems: reader.problems) }
        return config
    }
}

extension AgentConfig {
    /// The YAML document as the reader's values.
    static func yamlRoot(_ text: String, file: String) throws -> Any? {
        do {
            // Yams traps on a mapping key that is not a plain scalar (`? [a, b]: c`, found by
            // the fuzzer): such a file is refused, naming where, before it is loaded.
            let node = try Yams.compose(yaml: text, .basic)
            if let problem = node.flatMap({ nonScalarKey(in: $0, at: "") }) { throw Invalid(problems: [Problem(file: file, problem)]) }
            return node.map(yamlValue)
        } catch let invalid as Invalid {
            throw invalid
        } catch {
            throw Invalid(problems: [Problem(file: file, "not valid YAML: \(error)")])
        }
    }
}

/// A YAML node as the reader's values: mappings, sequences, and scalars resolved by YAML
/// 1.2's core schema (a quoted scalar is always a string). Done here rather than by Yams's
/// default resolver, whose regular expressions (Foundation's, over ICU) cost the agent some
/// 2.5 MiB of resident memory for the life of the process.
func yamlValue(_ node: Node) -> Any {
    switch node {
    case .mapping(let mapping):
        var out: [String: Any] = [:]
        for (key, value) in mapping { out[key.scalar?.string ?? ""] = yamlValue(value) }
        return out
    case .sequence(let sequence):
        return sequence.map(yamlValue)
    case .scalar(let scalar):
        return scalar.style == .plain ? plainScalar(scalar.string) : scalar.string
    case .alias(let alias):
        return "*" + alias.anchor.rawValue
    }
}

/// null, booleans and numbers of the core schema; everything else is the text itself.
func plainScalar(_ text: String) -> Any {
    switch text {
    case "", "~", "null", "Null", "NULL": return NSNull()
    case "true", "True", "TRUE": return true
    case "false", "False", "FALSE": return false
    default: break
    }
    let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
    if !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(text) { return n }
    if text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") }),
        text.utf8.contains(where: { $0 >= 48 && $0 <= 57 }), let d = Double(text) {
        return d
    }
    return text
}

/// Where a mapping of `node` has a key that is not a plain string, if anywhere.
func nonScalarKey(in node: Node, at path: String) -> String? {
    switch node {
    case .mapping(let mapping):
        for (key, value) in mapping {
            guard case .scalar(let k) = key else {
                return "line \(key.mark.map { String($0.line) } ?? "?"): a key\(path.isEmpty ? "" : " under \(path)") must be a plain string"
            }
            if let p = nonScalarKey(in: value, at: path.isEmpty ? k.string : path + "." + k.string) { return p }
        }
        return nil
    case .sequence(let sequence):
        for (i, value) in sequence.enumerated() {
            if let p = nonScalarKey(in: value, at: "\(path)[\(i)]") { return p }
        }
        return nil
    default:
        return nil
    }
}

/// Walks the YAML tree, collecting every problem rather than stopping at the first.
struct ConfigReader {
    let file: String
    let directory: String
    let environment: [String: String]
    var problems: [AgentConfig.Problem] = []
    /// Keys of secrets given in the file rather than as `${NAME}` (`AgentConfig.inlineSecrets`).
    var inlineSecrets: [String] = []

    init(file: String, environment: [String: String]) {
        self.file = file
        self.directory = URL(fileURLWithPath: file).deletingLastPathComponent().path
        self.environment = environment
    }

    mutating func problem(_ key: String, _ message: String) { problems.append(AgentConfig.Problem(file: file, key: key, message)) }

    mutating func map(_ value: Any?, _ key: String, allowed: Set<String>) -> [String: Any]? {
        guard let value else { return nil }
        guard let m = value as? [String: Any] else { problem(key, "must be a mapping"); return nil }
        for k in m.keys.sorted() where !allowed.contains(k) {
            problem(key.isEmpty ? k : "\(key).\(k)", "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
        return m
    }

    /// A string value; `${NAME}` in it reads the environment.
    mutating func string(_ m: [String: Any]?, _ k: String, _ key: String, required: Bool = true) -> String? {
        guard let v = m?[k] else {
            if required { problem("\(key).\(k)", "is required") }
            return nil
        }
        guard let s = (v as? String) ?? (v as? Int).map(String.init) else { problem("\(key).\(k)", "must be a string"); return nil }
        return expand(s, "\(key).\(k)")
    }

    /// `${NAME}` reads the environment, so secrets stay out of the file.
    mutating func expand(_ s: String, _ key: String) -> String {
        if !s.isEmpty, !s.contains("${"), Self.isSecret(key) { inlineSecrets.append(key) }
        guard s.contains("${") else { return s }
        var out = ""
        var rest = Substring(s)
        while let open = rest.range(of: "${") {
            out += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else {
                problem(key, "unterminated ${ in value")
                return s
            }
            let name = String(rest[open.upperBound..<close])
            if let v = environment[name] { out += v } else { problem(key, "environment variable \(name) is not set") }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    func path(_ p: String) -> String {
        p.hasPrefix("/") ? p : URL(fileURLWithPath: directory).appendingPathComponent(p).standardizedFileURL.path
    }

    mutating func read(_ root: Any?) -> AgentConfig? {
        guard let top = map(root ?? [String: Any](), "", allowed: ["server", "plugins", "apps", "audit", "runtimeDirectory", "uplink"]) else { return nil }
        let uplink = readUplink(top["uplink"], "uplink")
        let runtimeDirectory = string(top, "runtimeDirectory", "", required: false).map(path)
        var audit: AgentConfig.Audit?
        if let a = map(top["audit"], "audit", allowed: ["file", "maxSizeMiB", "keep"]) {
            if let file = string(a, "file", "audit") {
                var settings = AgentConfig.Audit(file: file == "-" ? "-" : path(file))
                if let v = a["maxSizeMiB"] {
                    if let n = v as? Int, n >= 1 { settings.maxSize = n << 20 } else { problem("audit.maxSizeMiB", "must be a whole number of MiB, at least 1") }
                }
                if let v = a["keep"] {
                    if let n = v as? Int, (0...1000).contains(n) { settings.keep = n } else { problem("audit.keep", "must be a whole number from 0 to 1000") }
                }
                audit = settings
            }
        }
        let serverMap = map(top["server"] ?? [String: Any](), "server", allowed: ["listen", "tls", "maxBodySize", "metrics", "status"])
        var metrics = true
        var metricsListen: AgentConfig.Listen?
        var metricsAuth: AgentConfig.Auth?
        if let v = serverMap?["metrics"] {
            if let b = v as? Bool { metrics = b } else if v is [String: Any], let m = map(v, "server.metrics", allowed: ["listen", "auth"]) {
                if let listen = string(m, "listen", "server.metrics", required: false) {
                    if let (h, p) = Self.hostPort(listen) { metricsListen = .init(host: h, port: p) } else {
                        problem("server.metrics.listen", "\"\(listen)\" is not host:port with a port from 1 to 65535")
                    }
                }
                if m["auth"] != nil { metricsAuth = readAuth(m["auth"], "server.metrics.auth") }
            } else { problem("server.metrics", "must be true, false or { listen, auth }") }
        }
        var statusAuth: AgentConfig.Auth?
        if let m = map(serverMap?["status"], "server.status", allowed: ["auth"]), m["auth"] != nil {
            statusAuth = readAuth(m["auth"], "server.status.auth")
        }
        var host = "127.0.0.1", port = 8080
        // With an uplink and no listen, the agent opens no port (and its apps need no auth:
        // the relay authenticates their clients).
        let listens = serverMap?["listen"] != nil || top["uplink"] == nil
        if !listens, serverMap?["tls"] != nil { problem("server.tls", "applies to server.listen, which is not set (with an uplink the agent opens no port)") }
        if let listen = string(serverMap, "listen", "server", required: false) {
            if let (h, p) = Self.hostPort(listen) { (host, port) = (h, p) } else {
                problem("server.listen", "\"\(listen)\" is not host:port with a port from 1 to 65535")
            }
        }
        let tls = readTLS(serverMap?["tls"], "server.tls")
        if let m = metricsListen, m.port == port, m.host == host { problem("server.metrics.listen", "is the agent's own listener: leave listen out to serve /metrics there") }
        var maxBody = 1 << 20
        if let v = serverMap?["maxBodySize"] {
            if let n = v as? Int, n >= 1024 { maxBody = n } else { problem("server.maxBodySize", "must be a number of bytes, at least 1024") }
        }
        let pluginsMap = map(top["plugins"] ?? [String: Any](), "plugins", allowed: ["directory", "trust"])
        let pluginsDir = path(string(pluginsMap, "directory", "plugins", required: false) ?? "../plugins")
        var trustedKeys: [String] = []
        if let trust = map(pluginsMap?["trust"], "plugins.trust", allowed: ["publicKeys"]) {
            guard let keys = trust["publicKeys"] as? [Any], !keys.isEmpty else {
                problem("plugins.trust.publicKeys", "must be a list of PEM files of Ed25519 public keys")
                return nil
            }
            for (i, k) in keys.enumerated() {
                let key = "plugins.trust.publicKeys[\(i)]"
                guard let name = k as? String else { problem(key, "must be a file name"); continue }
                let file = path(name)
                do throws(PluginSignature.KeyError) {
                    _ = try PluginSignature.PublicKey(file: file)
                    trustedKeys.append(file)
                } catch {
                    problem(key, error.message)
                }
            }
        }

        var apps: [String: AgentConfig.App] = [:]
        if let appsValue = top["apps"] {
            guard let appsMap = appsValue as? [String: Any] else {
                problem("apps", "must be a mapping of app names to apps")
                return nil
            }
            for name in appsMap.keys.sorted() {
                let key = "apps.\(name)"
                guard checkAppName(name, key) else { continue }
                guard let app = map(appsMap[name], key, allowed: ["connector", "settings", "auth", "remote", "unknownAttributes", "isolation", "process", "guard"]) else {
                    problem(key, "must be a mapping with connector (or remote) and auth")
                    continue
                }
                var unknown = AgentConfig.UnknownAttributes.ignore
                if app["unknownAttributes"] != nil {
                    guard let text = string(app, "unknownAttributes", key) else { continue }
                    guard let policy = AgentConfig.UnknownAttributes(rawValue: text) else {
                        problem("\(key).unknownAttributes", "\"\(text)\" is not one of ignore, reject")
                        continue
                    }
                    unknown = policy
                }
                var limits = AgentConfig.GuardLimits()
                if let g = map(app["guard"], "\(key).guard", allowed: ["maxDeletesPerHour", "maxDeactivationsPerHour"]) {
                    for (k, v) in g.sorted(by: { $0.key < $1.key }) {
                        guard let n = v as? Int, n >= 0 else { problem("\(key).guard.\(k)", "must be a whole number, 0 or more"); continue }
                        if k == "maxDeletesPerHour" { limits.maxDeletesPerHour = n } else { limits.maxDeactivationsPerHour = n }
                    }
                }
                if app["remote"] != nil {
                    if app["connector"] != nil { problem(key, "give either connector or remote, not both") }
                    guard let remote = readRemote(app["remote"], "\(key).remote"), let auth = appAuth(app, key, listens: listens) else { continue }
                    apps[name] = AgentConfig.App(name: name, target: .remote(remote), auth: auth, unknownAttributes: unknown, deletionGuard: limits)
                    continue
                }
                guard let connector = string(app, "connector", key) else { continue }
                var settings = JSON.object([:])
                if let s = app["settings"] {
                    guard s is [String: Any] else { problem("\(key).settings", "must be a mapping"); continue }
                    settings = json(s, "\(key).settings")
                }
                guard let auth = appAuth(app, key, listens: listens) else { continue }
                var isolation = AgentConfig.Isolation.inProcess
                if app["isolation"] != nil {
                    guard let text = string(app, "isolation", key) else { continue }
                    guard let value = AgentConfig.Isolation(rawValue: text) else {
                        problem("\(key).isolation", "\"\(text)\" is not one of in-process, process")
                        continue
                    }
                    isolation = value
                }
                var process = AgentConfig.ProcessOptions()
                if app["process"] != nil {
                    if isolation != .process { problem("\(key).process", "only applies with isolation: process") }
                    guard let options = readProcess(app["process"], "\(key).process") else { continue }
                    process = options
                }
                apps[name] = AgentConfig.App(
                    name: name, target: .connector(name: connector, settings: settings), auth: auth, unknownAttributes: unknown,
                    isolation: isolation, process: process, deletionGuard: limits)
            }
        }
        return AgentConfig(
            file: file, directory: directory,
            server: .init(
                host: host, port: port, tls: tls, maxBodySize: maxBody, metrics: metrics,
                metricsListen: metricsListen, metricsAuth: metricsAuth, statusAuth: statusAuth, listens: listens),
            pluginsDirectory: pluginsDir, trustedKeys: trustedKeys, audit: audit, runtimeDirectory: runtimeDirectory, apps: apps,
            uplink: uplink, inlineSecrets: inlineSecrets)
    }

    /// An app's client authentication; optional when the agent opens no port (its relays
    /// authenticate the clients).
    mutating func appAuth(_ app: [String: Any], _ key: String, listens: Bool) -> AgentConfig.Auth? {
        if !listens, app["auth"] == nil { return AgentConfig.Auth.none }
        return readAuth(app["auth"], "\(key).auth")
    }

    /// `apps.<app>.process: { callTimeout: 30, memoryLimitMiB: 512, openFiles: 1024 }`.
    mutating func readProcess(_ value: Any?, _ key: String) -> AgentConfig.ProcessOptions? {
        guard let m = map(value, key, allowed: ["callTimeout", "memoryLimitMiB", "openFiles"]) else { return nil }
        var options = AgentConfig.ProcessOptions()
        if let v = m["callTimeout"] {
            if let n = (v as? Double) ?? (v as? Int).map(Double.init), n > 0, n <= 86400 { options.callTimeout = n } else {
                problem("\(key).callTimeout", "must be a number of seconds from 0 to 86400")
            }
        }
        if let v = m["memoryLimitMiB"] {
            // Below this the Swift runtime and the thread stacks of the child do not fit.
            if let n = v as? Int, n >= 64 { options.memoryLimit = n << 20 } else { problem("\(key).memoryLimitMiB", "must be a whole number of MiB, at least 64") }
        }
        if let v = m["openFiles"] {
            if let n = v as? Int, n >= 16 { options.openFiles = n } else { problem("\(key).openFiles", "must be a whole number, at least 16") }
        }
        return options
    }

    /// `{ certificate, privateKey }`, PEM files that must be readable.
    mutating func readTLS(_ value: Any?, _ key: String) -> AgentConfig.TLS? {
        guard let tlsMap = map(value, key, allowed: ["certificate", "privateKey"]) else { return nil }
        guard let cert = string(tlsMap, "certificate", key), let privateKey = string(tlsMap, "privateKey", key) else { return nil }
        for (k, p) in [("certificate", path(cert)), ("privateKey", path(privateKey))] where !FileManager.default.isReadableFile(atPath: p) {
            problem("\(key).\(k)", "cannot read \(p)")
        }
        return AgentConfig.TLS(certificate: path(cert), privateKey: path(privateKey))
    }

    /// `uplink: { url | urls, name, token, caFile, proxy, heartbeatSeconds }`.
    mutating func readUplink(_ value: Any?, _ key: String) -> AgentConfig.Uplink? {
        guard let m = map(value, key, allowed: ["url", "urls", "name", "token", "caFile", "proxy", "heartbeatSeconds"]) else { return nil }
        var given: [(String, String)] = []
        switch (m["url"], m["urls"]) {
        case (nil, nil): problem(key, "give url (or urls, one per relay)")
        case (_?, _?): problem(key, "give either url or urls, not both")
        case (_?, nil): if let u = string(m, "url", key) { given = [(u, "\(key).url")] }
        case (nil, let list?):
            guard let list = list as? [Any], !list.isEmpty else { problem("\(key).urls", "must be a list of relay URLs"); break }
            for (i, item) in list.enumerated() {
                let k = "\(key).urls[\(i)]"
                if let s = item as? String { given.append((expand(s, k), k)) } else { problem(k, "must be a URL") }
            }
        }
        var urls: [String] = []
        for (u, k) in given {
            var text = u
            while text.hasSuffix("/") { text.removeLast() }
            guard let parsed = URL(string: text), let scheme = parsed.scheme?.lowercased(), ["https", "http", "wss", "ws"].contains(scheme),
                let host = parsed.host, parsed.path.isEmpty || parsed.path == "/uplink" else {
                problem(k, "\"\(u)\" is not a relay URL: https://host:port")
                continue
            }
            let secure = scheme == "https" || scheme == "wss"
            if !secure && !Self.isLoopback(host) { problem(k, "plain http:// is only allowed to a loopback address; use https://") }
            if secure, host.contains(":") || host.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 }) {
                problem(k, "name the relay by a DNS name its certificate holds, not an IP address (TLS sends the name as SNI); add it to /etc/hosts if it has none")
            }
            urls.append("\(secure ? "wss" : "ws")://\(host.contains(":") ? "[\(host)]" : host):\(parsed.port ?? (secure ? 443 : 80))/uplink")
        }
        let name = string(m, "name", key)
        if let name, name.isEmpty || !name.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) { problem("\(key).name", "must be printable ASCII without spaces") }
        let token = string(m, "token", key)
        var caFile: String?
        if let ca = string(m, "caFile", key, required: false) {
            caFile = path(ca)
            if !FileManager.default.isReadableFile(atPath: caFile!) { problem("\(key).caFile", "cannot read \(caFile!)") }
        }
        var proxy: AgentConfig.Proxy?
        if let p = string(m, "proxy", key, required: false) {
            if let c = URLComponents(string: p), c.scheme?.lowercased() == "http", let host = c.host, !host.isEmpty, c.path.isEmpty || c.path == "/" {
                proxy = .init(host: host, port: c.port ?? 3128, username: c.percentEncodedUser?.removingPercentEncoding, password: c.percentEncodedPassword?.removingPercentEncoding)
                if c.password != nil, !p.contains("${") { inlineSecrets.append("\(key).proxy") }
            } else {
                problem("\(key).proxy", "\"\(p)\" is not an HTTP proxy URL: http://[user:password@]host:port")
            }
        }
        var heartbeat = 5.0
        if let v = m["heartbeatSeconds"] {
            if let n = (v as? Double) ?? (v as? Int).map(Double.init), n >= 0.2, n <= 300 { heartbeat = n } else {
                problem("\(key).heartbeatSeconds", "must be a number of seconds from 0.2 to 300")
            }
        }
        guard let name, let token, !urls.isEmpty else { return nil }
        if token.isEmpty { problem("\(key).token", "is empty") }
        return AgentConfig.Uplink(urls: urls, name: name, token: token, caFile: caFile, proxy: proxy, heartbeat: heartbeat)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]"
    }

    mutating func readAuth(_ value: Any?, _ key: String) -> AgentConfig.Auth? {
        guard let value else {
            problem(key, "is required: { type: basic | header | none, ... } (write type: none to serve without authentication)")
            return nil
        }
        guard let m = map(value, key, allowed: ["type", "username", "password", "name", "value"]) else { return nil }
        switch string(m, "type", key) {
        case "none": return AgentConfig.Auth.none
        case "basic":
            guard let u = string(m, "username", key), let p = string(m, "password", key) else { return nil }
            return .basic(username: u, password: p)
        case "header":
            guard let n = string(m, "name", key), let v = string(m, "value", key) else { return nil }
            return .header(name: n, value: v)
        case let t?:
            problem("\(key).type", "\"\(t)\" is not one of basic, header, none")
            return nil
        case nil: return nil
        }
    }

    mutating func readRemote(_ value: Any?, _ key: String) -> AgentConfig.Remote? {
        guard let m = map(value, key, allowed: ["url", "auth", "caFile", "allowInsecureHTTP", "timeouts", "retries", "circuitBreaker"]) else { return nil }
        guard var url = string(m, "url", key) else { return nil }
        while url.hasSuffix("/") { url.removeLast() }
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = parsed.host else {
            problem("\(key).url", "\"\(url)\" is not an http(s) URL")
            return nil
        }
        let insecure = m["allowInsecureHTTP"] as? Bool ?? false
        if scheme == "http" && !Self.isLoopback(host) && !insecure {
            problem("\(key).url", "plain http:// is only allowed to a loopback address; use https:// or set allowInsecureHTTP: true")
        }
        var auth = AgentConfig.Remote.Auth.none
        if let a = map(m["auth"], "\(key).auth", allowed: ["type", "username", "password", "name", "value", "tokenURL", "clientID", "clientSecret", "scope"]) {
            switch string(a, "type", "\(key).auth") {
            case "none": auth = .none
            case "basic":
                if let u = string(a, "username", "\(key).auth"), let p = string(a, "password", "\(key).auth") { auth = .basic(username: u, password: p) }
            case "header":
                if let n = string(a, "name", "\(key).auth"), let v = string(a, "value", "\(key).auth") { auth = .header(name: n, value: v) }
            case "oauth2":
                if let t = string(a, "tokenURL", "\(key).auth"), let i = string(a, "clientID", "\(key).auth"), let c = string(a, "clientSecret", "\(key).auth") {
                    auth = .oauth2(tokenURL: t, clientID: i, clientSecret: c, scope: string(a, "scope", "\(key).auth", required: false))
                }
            case let t?: problem("\(key).auth.type", "\"\(t)\" is not one of basic, header, oauth2, none")
            case nil: break
            }
        }
        let timeouts = map(m["timeouts"], "\(key).timeouts", allowed: ["connect", "request"])
        func number(_ v: Any?, _ k: String, _ d: Double) -> Double {
            guard let v else { return d }
            if let n = v as? Double, n > 0 { return n }
            if let n = v as? Int, n > 0 { return Double(n) }
            problem(k, "must be a positive number of seconds")
            return d
        }
        func retries(_ v: Any?, _ k: String) -> Int {
            guard let v else { return 2 }
            if let n = v as? Int, (0...10).contains(n) { return n }
            problem(k, "must be a whole number from 0 to 10")
            return 2
        }
        let breaker = map(m["circuitBreaker"], "\(key).circuitBreaker", allowed: ["failures", "cooldown"])
        var caFile: String?
        if let ca = string(m, "caFile", key, required: false) {
            caFile = path(ca)
            if !FileManager.default.isReadableFile(atPath: caFile!) { problem("\(key).caFile", "cannot read \(caFile!)") }
        }
        return AgentConfig.Remote(
            url: url, auth: auth, caFile: caFile,
            connectTimeout: number(timeouts?["connect"], "\(key).timeouts.connect", 3), requestTimeout: number(timeouts?["request"], "\(key).timeouts.request", 30),
            retries: retries(m["retries"], "\(key).retries"), breakerThreshold: Int(number(breaker?["failures"], "\(key).circuitBreaker.failures", 5)),
            breakerCooldown: number(breaker?["cooldown"], "\(key).circuitBreaker.cooldown", 10))
    }

    /// Settings go to the connector as JSON; `${ENV}` is expanded in strings.
    mutating func json(_ v: Any, _ key: String) -> JSON {
        switch v {
        case let m as [String: Any]:
            return .object(JSONObject(m.keys.sorted().map { .init(key: $0, value: json(m[$0]!, "\(key).\($0)")) }))
        case let a as [Any]: return .array(a.enumerated().map { json($0.element, "\(key)[\($0.offset)]") })
        case let s as String: return .string(expand(s, key))
        case let b as Bool: return .bool(b)
        case let i as Int: return .number(Double(i))
        case let d as Double: return .number(d)
        default: return .null
        }
    }

    /// A key that holds a secret by its name: a password, a client secret, a token, or the
    /// value of an `auth: { type: header }`.
    static func isSecret(_ key: String) -> Bool {
        let last = key.split(separator: ".").last.map { $0.lowercased() } ?? ""
        return last.contains("password") || last.contains("secret") || last.hasSuffix("token") || key.hasSuffix("auth.value")
    }

    static func hostPort(_ s: String) -> (String, Int)? {
        guard let colon = s.lastIndex(of: ":") else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        return (host, port)
    }
}

extension ConfigReader {
    /// App names are part of the URL: letters, digits, '-' and '_'.
    mutating func checkAppName(_ name: String, _ key: String) -> Bool {
        guard name.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 122) || $0 == 45 || $0 == 95 }), !name.isEmpty else {
            problem(key, "app names may use letters, digits, '-' and '_' only (they are part of the URL)")
            return false
        }
        return true
    }
}
