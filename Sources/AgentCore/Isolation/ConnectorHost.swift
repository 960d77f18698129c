import Foundation
import Logging
import NIOConcurrencyHelpers
import SCIMKit

/// The child side of `isolation: process` (`provisioning-agent connector-host`, started by
/// `IsolatedConnector`): loads one plugin build, opens one app's instance of it, and serves
/// the agent's calls on it over the socket on fd 3 (`Frame`) through the same
/// `ConnectorInstance` an in-process app uses. It exits when the agent closes the socket.
public enum ConnectorHost {
    public static func run(fd: Int32, logLevel: Logger.Level) -> Int32 {
        let out = FrameWriter(fd: fd)
        var logger = Logger(label: "connector-host") { _ in ParentLogHandler(out: out) }
        logger.logLevel = logLevel
        let reader = Frame.Reader(fd: fd)
        let calls = BlockingCallPool()
        guard case .frame(let id, .request, let payload) = reader.next(timeout: -1), let open = try? JSON.parse(Array(payload)) else { return 2 }
        let instance: ConnectorInstance?
        do throws(SCIMError) {
            let (facts, opened) = try Self.open(open, calls: calls, logger: logger)
            instance = opened
            out.send(id: id, .reply, facts.serializedBytes())
        } catch {
            out.send(id: id, .failure, error.frameJSON.serializedBytes())
            return 0
        }
        guard let instance else { return 0 }  // a probe: the facts were all that was asked
        while true {
            switch reader.next(timeout: -1) {
            case .frame(let id, .request, let payload):
                let bytes = Array(payload)
                Task {
                    do throws(SCIMError) {
                        let result = try await Self.handle(try Self.parse(bytes), on: instance)
                        out.send(id: id, .reply, result?.serializedBytes() ?? [])
                    } catch {
                        out.send(id: id, .failure, error.frameJSON.serializedBytes())
                    }
                }
            case .frame, .idle:
                continue
            case .closed:
                // The agent closed the socket, or died. A call stuck in the plugin must not
                // keep this process alive: SIGALRM ends it if close takes over 5 s.
                alarm(5)
                instance.close()
                calls.shutdown()
                return 0
            }
        }
    }

    static func parse(_ bytes: [UInt8]) throws(SCIMError) -> JSON {
        do { return try JSON.parse(bytes) } catch { throw SCIMError(status: 500, detail: "connector host: unreadable request: \(error.detail)") }
    }

    /// `{"op": "open", "library", "file", "contentHash", "privateDirectory", "configDirectory", "app"?, "settings"?, "test"?}`.
    static func open(_ m: JSON, calls: BlockingCallPool, logger: Logger) throws(SCIMError) -> (JSON, ConnectorInstance?) {
        guard let file = m["file"]?.stringValue, let hash = m["contentHash"]?.stringValue, let dir = m["privateDirectory"]?.stringValue,
              let configDirectory = m["configDirectory"]?.stringValue, let path = m["library"]?.stringValue,
              let data = FileManager.default.contents(atPath: path)
        else { throw SCIMError(status: 500, detail: "connector host: cannot read the plugin copy") }
        let library: PluginLibrary
        do {
            library = try PluginLibrary.load(file: file, data: data, contentHash: hash, privateDirectory: dir, configDirectory: configDirectory, logger: logger)
        } catch {
            throw SCIMError(status: 500, scimType: .init(rawValue: error.code.rawValue), detail: error.reason)
        }
        var facts: JSONObject = [
            "name": .string(library.name), "version": .string(library.version), "shape": ConnectorShape(library).json,
            "concurrent": .bool(library.isConcurrent), "unloadable": .bool(library.isUnloadable),
        ]
        if let t = library.toolchain { facts["toolchain"] = .string(t) }
        guard let app = m["app"]?.stringValue else { return (.object(facts), nil) }
        let instance: ConnectorInstance
        do {
            instance = try ConnectorInstance.open(library, app: app, settings: m["settings"] ?? .object([:]), calls: calls)
        } catch {
            throw error.error
        }
        if m["test"]?.boolValue == true { facts["message"] = .string(try instance.testNow()) }
        facts["described"] = try instance.describe() ?? .null
        return (.object(facts), instance)
    }

    /// One call of the agent's on the instance: the same `Target` methods an in-process app's
    /// requests reach.
    static func handle(_ m: JSON, on instance: ConnectorInstance) async throws(SCIMError) -> JSON? {
        let kind = m["kind"]?.stringValue.flatMap(Capabilities.ResourceKind.init(rawValue:)) ?? .user
        func string(_ key: String) throws(SCIMError) -> String {
            guard let s = m[key]?.stringValue else { throw SCIMError(status: 500, detail: "connector host: request without \(key)") }
            return s
        }
        func value(_ key: String) throws(SCIMError) -> JSON {
            guard let v = m[key] else { throw SCIMError(status: 500, detail: "connector host: request without \(key)") }
            return v
        }
        switch m["op"]?.stringValue {
        case "create": return try await instance.create(kind, try value("resource"))
        case "get": return try await instance.get(kind, try string("id"))
        case "replace":
            let expected = m["expected"].flatMap { $0 == .null ? nil : $0 }
            return try await instance.replace(kind, try string("id"), try value("resource"), ifUnchanged: expected)
        case "patch": return try await instance.patch(kind, try string("id"), try PatchRequest(json: try value("patch")))
        case "delete":
            try await instance.delete(kind, try string("id"))
            return nil
        case "search": return try await instance.search(kind, try Query(json: try value("query"))).json
        case "members":
            try await instance.changeMembers(try string("group"), try value("members").arrayValue ?? [], add: m["add"]?.boolValue ?? false)
            return nil
        case "test": return .string(try await instance.test())
        case let op: throw SCIMError(status: 500, detail: "connector host: unknown operation \(op ?? "none")")
        }
    }
}

extension SCIMError {
    var frameJSON: JSON {
        var o: JSONObject = ["status": .number(Double(status)), "detail": .string(detail)]
        if let scimType { o["scimType"] = .string(scimType.rawValue) }
        return .object(o)
    }

    init(frame: JSON) {
        let status = frame["status"]?.intValue ?? 502
        self.init(
            status: (400...599).contains(status) ? status : 502, scimType: frame["scimType"]?.stringValue.map(ScimType.init(rawValue:)),
            detail: frame["detail"]?.stringValue ?? "connector failed with status \(status)")
    }
}

/// Frames to the agent from any thread, one at a time.
final class FrameWriter: Sendable {
    let fd: Int32
    private let lock = NIOLock()
    init(fd: Int32) { self.fd = fd }

    @discardableResult
    func send(id: UInt64, _ kind: Frame.Kind, _ payload: [UInt8]) -> Bool {
        let bytes = Frame.encode(id: id, kind: kind, payload: payload)
        return lock.withLock { Frame.write(fd, bytes) }
    }
}

/// The plugin's log lines, sent to the agent, which logs them under the app's name.
struct ParentLogHandler: LogHandler {
    let out: FrameWriter
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let code: Int = switch level {
        case .trace, .debug: 0
        case .info, .notice: 1
        case .warning: 2
        default: 3
        }
        out.send(id: 0, .log, JSON.object(["level": .number(Double(code)), "message": .string(message.description)]).serializedBytes())
    }
}

