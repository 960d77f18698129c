import AgentCore
import AgentHTTP
import CConnectorABI
import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import NIOPosix
import SCIMKit
import ServiceLifecycle

@main
struct ProvisioningAgent: AsyncParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "provisioning-agent",
        abstract: "Serves SCIM 2.0 for on-premises apps through connector plugins.",
        subcommands: [Serve.self, Relay.self, Plugins.self, Check.self, Guard.self, Audit.self, Version.self, ConnectorHostCommand.self],
        defaultSubcommand: Serve.self)
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The configuration file.")
    var config: String = "conf/agent.yaml"

    func load() throws -> AgentConfig {
        try check { try AgentConfig.load(path: config) }
    }

    func check<T>(_ body: () throws -> T) throws -> T { try Self.check(body) }

    /// A configuration problem is printed, naming the file and key, and exits with status 2.
    static func check<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as AgentConfig.Invalid {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(2)
        }
    }
}

func makeLogger(_ label: String) -> Logger {
    let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    LoggingSystem.bootstrap { label in LineLogHandler(label: label, logLevel: level) }
    return Logger(label: label)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the agent.")
    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        try options.check { try StatusFileService.prepare(config: config) }
        let logger = makeLogger("provisioning-agent")
        // One malloc arena per core rather than per thread: the worker pool and event loops
        // otherwise each keep an arena's worth of resident memory.
        _ = glibcMallopt(-8 /* M_ARENA_MAX, <malloc.h> */, Int32(max(2, ProcessInfo.processInfo.activeProcessorCount)))
        for warning in config.exposedSecretsWarnings { logger.warning("\(warning)") }
        if config.server.metrics { MetricsSystem.bootstrap(PrometheusMetricsFactory()) }
        let registry = try ConnectorRegistry(config: config, logger: logger, remoteClients: RemoteClients())
        registry.loadAll()
        let audit = try config.audit.map { try AuditLog(settings: $0) }
        defer { audit?.stop() }
        let service = SCIMService(registry: registry, logger: logger, audit: audit)
        let services: [any Service] = [
            StatusFileService(registry: registry, logger: logger),
            HotReloadService(registry: registry, logger: logger),
            RemoteDiscoveryService(registry: registry, logger: logger),
        ]
        if config.uplink != nil, !config.server.listens {
            logger.info("serving through the uplink only; no port is open", metadata: ["apps": .string(config.appNames.joined(separator: ","))])
        }
        let group = try AgentServer.serviceGroup(
            service: service, config: config, logger: logger, services: services,
            onServerRunning: { channel in
                logger.info("serving", metadata: [
                    "listen": .string("\(channel.localAddress?.description ?? "?")"),
                    "apps": .string(config.appNames.joined(separator: ",")),
                ])
            })
        var failure: (any Error)?
        do {
            try await group.run()
        } catch {
            logger.error("server stopped", metadata: ["error": .string("\(error)")])
            failure = error
        }
        await registry.shutdown()
        if failure != nil { throw ExitCode(1) }
    }
}

struct Relay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run as a relay outside the firewall: agents dial in, clients' SCIM requests are handed to them.")
    @Option(name: .long, help: "The relay's configuration file.")
    var config: String = "conf/relay.yaml"

    func run() async throws {
        let relayConfig = try ConfigOption.check { try RelayConfig.load(path: config) }
        let logger = makeLogger("provisioning-agent-relay")
        MetricsSystem.bootstrap(PrometheusMetricsFactory())
        for warning in AgentConfig.exposedSecretsWarnings(file: relayConfig.file, inlineSecrets: relayConfig.inlineSecrets) {
            logger.warning("\(warning)")
        }
        let app = try RelayServer.application(config: relayConfig, logger: logger)
        do {
            try await app.runService()
        } catch {
            logger.error("relay stopped", metadata: ["error": .string("\(error)")])
            throw ExitCode(1)
        }
    }
}

struct Plugins: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List connector plugins: loaded, failed, and why.")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Machine-readable output.") var json = false

    func run() async throws {
        let config = try options.load()
        let statuses: [JSON]
        let source: String
        if let running = StatusFileService.readRunning(config: config) {
            statuses = running
            source = "running agent"
        } else {
            var logger = makeLogger("provisioning-agent")
            logger.logLevel = .critical
            let registry = try ConnectorRegistry(config: config, logger: logger, openInstances: false)
            registry.loadAll()
            statuses = registry.status().map(\.json)
            source = "scan of \(config.pluginsDirectory) (no agent running)"
        }
        if json {
            print(JSON.object(["source": .string(source), "plugins": .array(statuses)]).serialized())
            return
        }
        print("Plugins (\(source)):")
        for s in statuses {
            let name = s["connector"]?.stringValue ?? "-"
            var line = "  \(s["file"]?.stringValue ?? "?")  \(name)"
            if let v = s["version"]?.stringValue { line += " \(v)" }
            line += "  [\(s["state"]?.stringValue ?? "?")]"
            if let g = s["generation"]?.intValue { line += " generation \(g)" }
            if let h = s["contentHash"]?.stringValue { line += " hash \(h)" }
            if let n = s["inFlight"]?.intValue, n > 0 { line += " in-flight \(n)" }
            print(line)
            if let e = s["lastError"]?.stringValue { print("      error: \(e)") }
            for p in s["processes"]?.arrayValue ?? [] {
                var line = "      app \(p["app"]?.stringValue ?? "?") in a child process [\(p["state"]?.stringValue ?? "?")]"
                if let pid = p["pid"]?.intValue { line += " pid \(pid)" }
                line += ", \(p["crashes"]?.intValue ?? 0) crashes, \(p["restarts"]?.intValue ?? 0) restarts"
                if let r = p["lastReason"]?.stringValue { line += "; last: its process \(r)" }
                print(line)
            }
        }
        if statuses.isEmpty { print("  (none)") }
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Test every app's target and print its discovered capabilities.")
    @OptionGroup var options: ConfigOption
    @Option(help: "Check only this app.") var app: String?
    @Flag(help: "Machine-readable output.") var json = false

    func run() async throws {
        let config = try options.load()
        var logger = makeLogger("provisioning-agent")
        logger.logLevel = json ? .critical : .warning
        let names = app.map { [$0] } ?? config.appNames
        if let app, config.apps[app] == nil {
            throw ValidationError("no app named \(app) in \(config.file)")
        }
        let registry = try ConnectorRegistry(config: config, logger: logger, remoteClients: RemoteClients())
        registry.loadAll()
        let service = SCIMService(registry: registry, logger: logger)
        var failed = false
        var reports: [JSON] = []
        for name in names {
            var report: JSONObject = ["app": .string(name)]
            switch config.apps[name]?.target {
            case .connector(let connector, _)?: report["connector"] = .string(connector)
            case .remote(let remote)?: report["connector"] = .string("remote \(remote.url)")
            case nil: break
            }
            report["unknownAttributes"] = .string(config.apps[name]?.unknownAttributes.rawValue ?? "ignore")
            do {
                let message = try await service.test(app: name)
                let capabilities = try await service.capabilities(app: name)
                report["ok"] = true
                report["message"] = .string(message)
                report["capabilities"] = capabilities.summary
            } catch {
                failed = true
                report["ok"] = false
                report["error"] = .string(error.detail)
            }
            reports.append(.object(report))
        }
        await registry.shutdown()
        // Each relay is asked whether it accepts this agent and serves its apps.
        var uplinks: [JSON] = []
        if app == nil, let uplink = config.uplink {
            for url in uplink.urls {
                let answer = await UplinkProbe.ask(url, uplink: uplink, apps: config.appNames)
                if !answer.ok { failed = true }
                uplinks.append(["url": .string(url), "ok": .bool(answer.ok), "detail": .string(answer.detail)])
            }
        }
        let warnings = config.exposedSecretsWarnings
        if json {
            var out: JSONObject = ["ok": .bool(!failed), "apps": .array(reports)]
            if config.uplink != nil { out["uplinks"] = .array(uplinks) }
            if !warnings.isEmpty { out["warnings"] = .array(warnings.map(JSON.string)) }
            print(JSON.object(out).serialized())
        } else {
            for warning in warnings { print("! \(warning)") }
            for r in reports { print(CheckReport.text(r)) }
            for u in uplinks { print("\(u["ok"]?.boolValue == true ? "✓" : "✗") uplink \(u["url"]?.stringValue ?? "?"): \(u["detail"]?.stringValue ?? "")") }
        }
        if failed { throw ExitCode(1) }
    }
}

struct Guard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guard", abstract: "The running agent's deletion guards (apps.<app>.guard).", subcommands: [Status.self, Release.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Deletes and deactivations in the last hour, per app.")
        @OptionGroup var options: ConfigOption
        func run() throws {
            let config = try options.load()
            guard let status = StatusFileService.readRunningStatus(config: config) else { throw ValidationError("no agent is running with \(config.file)") }
            print((status["guard"] ?? .object([:])).serialized())
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let an app's deletes and deactivations through again.")
        @OptionGroup var options: ConfigOption
        @Option(help: "The app whose guard to release.") var app: String
        func run() throws {
            let config = try options.load()
            guard config.apps[app] != nil else { throw ValidationError("no app named \(app) in \(config.file)") }
            guard StatusFileService.readRunningStatus(config: config) != nil else { throw ValidationError("no agent is running with \(config.file)") }
            let request = StatusFileService.releaseDirectory(for: config) + "/" + app
            guard FileManager.default.createFile(atPath: request, contents: Data()) else { throw ValidationError("cannot write \(request)") }
            for _ in 0..<40 where FileManager.default.fileExists(atPath: request) { usleep(100_000) }
            if FileManager.default.fileExists(atPath: request) {
                try? FileManager.default.removeItem(atPath: request)
                throw ValidationError("the running agent did not take the release within 4 s")
            }
            print("deletion guard of app \(app) released")
        }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the audit log back: what was provisioned, when, by whom.")
    @OptionGroup var options: ConfigOption
    @Option(help: "Only this app's changes.") var app: String?
    @Option(help: "Only the last period: 90s, 30m, 12h, 7d.") var since: String?
    @Flag(help: "The JSON lines as written.") var json = false

    func run() throws {
        let config = try options.load()
        guard let settings = config.audit else { throw ValidationError("\(config.file) keeps no audit log (audit.file)") }
        guard settings.file != "-" else { throw ValidationError("the audit log goes to standard output; read it where that goes") }
        var cutoff: Double?
        if let since {
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
            guard let unit = since.last.flatMap({ units[$0] }), let n = Double(since.dropLast()), n >= 0 else {
                throw ValidationError("--since \(since): give a number and s, m, h or d (30m, 12h)")
            }
            cutoff = Date().timeIntervalSince1970 - n * unit
        }
        for file in AuditLog.files(settings) {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") {
                guard let record = try? JSON.parse(Array(line.utf8)) else { continue }
                if let app, record["app"]?.stringValue != app { continue }
                if let cutoff, (record["time"]?.stringValue.flatMap(DateTime.parse) ?? 0) < cutoff { continue }
                print(json ? String(line) : Self.text(record))
            }
        }
    }

    static func text(_ r: JSON) -> String {
        var line = [r["time"], r["app"], r["operation"], r["resourceType"]].compactMap { $0?.stringValue }.joined(separator: "  ")
        if let id = r["id"]?.stringValue { line += " \(id)" }
        if let name = r["userName"]?.stringValue ?? r["displayName"]?.stringValue { line += " (\(name))" }
        if let attributes = r["attributes"]?.arrayValue { line += " [\(attributes.compactMap(\.stringValue).joined(separator: ", "))]" }
        line += " → \(r["status"]?.intValue ?? 0)"
        if let client = r["client"] {
            line += "  by \(client["credential"]?.stringValue ?? "?")"
            if let address = client["remoteAddress"]?.stringValue { line += " from \(address)" }
        }
        return line
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() {
        print("provisioning-agent \(ProvisioningAgent.version) (\(SwiftToolchain.current), connector ABI \(SCIMC_ABI_MAJOR).\(SCIMC_ABI_MINOR))")
    }
}

/// The child process of an app with `isolation: process`, started by the agent itself
/// (`IsolatedConnector`) with its socket on fd 3; not for people to run.
struct ConnectorHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "connector-host", shouldDisplay: false)
    @Option var logLevel: String = "info"
    @Option var memoryLimit: Int?
    @Option var openFiles: Int?

    func run() throws {
        if let memoryLimit {
            var limit = rlimit(rlim_cur: rlim_t(memoryLimit), rlim_max: rlim_t(memoryLimit))
            setrlimit(Int32(RLIMIT_AS.rawValue), &limit)
        }
        if let openFiles {
            var limit = rlimit(rlim_cur: rlim_t(openFiles), rlim_max: rlim_t(openFiles))
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let code = ConnectorHost.run(fd: 3, logLevel: Logger.Level(rawValue: logLevel) ?? .info)
        throw ExitCode(code)
    }
}

/// glibc's mallopt(3); <malloc.h> is not part of the Glibc module.
@_silgen_name("mallopt")
func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
