import Foundation
import NIOConcurrencyHelpers
import SCIMKit

/// Who asked for a change: set by the HTTP front for the request's task (`Caller.$current`),
/// read where the change is audited.
public struct Caller: Sendable {
    /// Hummingbird's request id, the one in the request log line.
    public var requestId: String
    /// Which credential it authenticated with: "basic okta", "header Authorization", "none".
    public var credential: String
    public var remoteAddress: String?
    /// The operation's index in a Bulk request, for its items.
    public var bulkIndex: Int?

    public init(requestId: String, credential: String, remoteAddress: String?) {
        self.requestId = requestId
        self.credential = credential
        self.remoteAddress = remoteAddress
    }

    @TaskLocal public static var current: Caller?
}

/// The audit log (`audit:` in the configuration): one JSON line per operation that changed or
/// tried to change something, with the names of the attributes it touched and never their
/// values. Lines are handed to a writer thread and the request waits, holding no thread,
/// until its line is written (appended with `write`, in batches): an answered change is in
/// the log. The file is rotated by size, keeping `keep` older files (`file.1` the newest).
public final class AuditLog: Sendable {
    public typealias Settings = AgentConfig.Audit

    let settings: Settings
    private let state = NIOLockedValueBox(State())
    private let wakeup = ConditionLock(value: 0)

    private struct State {
        var queue: [(line: [UInt8], done: CheckedContinuation<Void, Never>)] = []
        var stopped = false
    }

    public init(settings: Settings) throws {
        self.settings = settings
        if settings.file != "-" {
            let fd = open(settings.file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw AgentConfig.Invalid(problems: [AgentConfig.Problem(file: settings.file, "cannot open the audit log: \(String(cString: strerror(errno)))")]) }
            close(fd)
        }
        let thread = Thread { [self] in writeLoop() }
        thread.name = "audit-log"
        thread.start()
    }

    /// Appends `record` and returns once it is written.
    public func write(_ record: JSON) async {
        var line = record.serializedBytes()
        line.append(0x0A)
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let accepted = state.withLockedValue { s -> Bool in
                guard !s.stopped else { return false }
                s.queue.append((line, done))
                return true
            }
            if accepted {
                wakeup.lock()
                wakeup.unlock(withValue: 1)
            } else {
                done.resume()
            }
        }
    }

    public func stop() {
        state.withLockedValue { $0.stopped = true }
        wakeup.lock()
        wakeup.unlock(withValue: 1)
    }

    private func writeLoop() {
        var fd: Int32 = settings.file == "-" ? 1 : open(settings.file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        var size = settings.file == "-" ? 0 : Int(lseek(fd, 0, SEEK_END))
        while true {
            wakeup.lock(whenValue: 1)
            let (batch, stopped) = state.withLockedValue { s in
                defer { s.queue = [] }
                return (s.queue, s.stopped)
            }
            wakeup.unlock(withValue: 0)
            if !batch.isEmpty {
                var bytes = [UInt8]()
                for entry in batch { bytes += entry.line }
                bytes.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { break }  // a full disk: the lines are lost, the requests still answered
                        offset += n
                    }
                }
                size += bytes.count
                for entry in batch { entry.done.resume() }
                if settings.file != "-" && size >= settings.maxSize {
                    close(fd)
                    Self.rotate(settings.file, keep: settings.keep)
                    fd = open(settings.file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
                    size = 0
                }
            }
            if stopped && batch.isEmpty {
                if settings.file != "-" { close(fd) }
                return
            }
        }
    }

    /// file → file.1 → … → file.keep (the oldest is dropped).
    static func rotate(_ file: String, keep: Int) {
        guard keep > 0 else {
            unlink(file)
            return
        }
        unlink("\(file).\(keep)")
        for i in stride(from: keep - 1, through: 1, by: -1) { rename("\(file).\(i)", "\(file).\(i + 1)") }
        rename(file, "\(file).1")
    }

    /// The files of the log, oldest first.
    public static func files(_ settings: Settings) -> [String] {
        guard settings.file != "-" else { return [] }
        let rotated = (1...max(1, settings.keep)).reversed().map { "\(settings.file).\($0)" }
        return (rotated + [settings.file]).filter { FileManager.default.fileExists(atPath: $0) }
    }

    // MARK: - What a record holds

    /// The attribute names a create or replace body sets (an extension's as `urn:…:name`).
    static func attributeNames(of body: JSON) -> [String] {
        guard let object = body.objectValue else { return [] }
        var names: [String] = []
        for member in object {
            let (key, value) = (member.key, member.value)
            if ["schemas", "id", "meta"].contains(where: { key.caselessEquals($0) }) { continue }
            if key.lowercased().hasPrefix("urn:"), let ext = value.objectValue {
                names += ext.keys.map { "\(key):\($0)" }
            } else {
                names.append(key)
            }
        }
        return names.sorted()
    }

    /// The attribute paths a PATCH touches (a path-less operation: its value's names).
    static func attributeNames(ofPatch body: JSON) -> [String] {
        var names: [String] = []
        for op in body["Operations"]?.arrayValue ?? [] {
            if let path = op["path"]?.stringValue { names.append(path) } else { names += attributeNames(of: op["value"] ?? .null) }
        }
        return Array(Set(names)).sorted()
    }
}
