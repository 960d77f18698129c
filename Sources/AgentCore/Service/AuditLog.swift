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
/// values. A line is appended with one `write(2)` under a lock, by the request's task, before
/// its answer goes out: an answered change is in the log. That is a copy into the page cache
/// on the concurrency pool, never on an event loop; a writer thread to hand lines to cost
/// 15–20 % of the CPU time of a create (two context switches and a wake-up per line).
/// The file is rotated by size, keeping `keep` older files (`file.1` the newest).
public final class AuditLog: Sendable {
    public typealias Settings = AgentConfig.Audit

    let settings: Settings
    private let file: NIOLockedValueBox<File>

    private struct File {
        var fd: Int32
        var size: Int
        var stopped = false
    }

    public init(settings: Settings) throws {
        self.settings = settings
        var fd: Int32 = 1
        var size = 0
        if settings.file != "-" {
            fd = open(settings.file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard fd >= 0 else { throw AgentConfig.Invalid(problems: [AgentConfig.Problem(file: settings.file, "cannot open the audit log: \(String(cString: strerror(errno)))")]) }
            size = Int(lseek(fd, 0, SEEK_END))
        }
        file = NIOLockedValueBox(File(fd: fd, size: size))
    }

    /// Appends `record`; returns once it is written.
    public func write(_ record: JSON) {
        var line = record.serializedBytes()
        line.append(0x0A)
        let settings = self.settings
        file.withLockedValue { f in
            guard !f.stopped else { return }
            line.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(f.fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }  // a full disk: the line is lost, the request still answered
                    offset += n
                }
            }
            f.size += line.count
            if settings.file != "-" && f.size >= settings.maxSize {
                close(f.fd)
                Self.rotate(settings.file, keep: settings.keep)
                f.fd = open(settings.file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
                f.size = 0
            }
        }
    }

    public func stop() {
        file.withLockedValue { f in
            if !f.stopped && settings.file != "-" { close(f.fd) }
            f.stopped = true
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
