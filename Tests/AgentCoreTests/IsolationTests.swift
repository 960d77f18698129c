import Foundation
import Testing
@testable import AgentCore
import SCIMKit

@Suite struct IsolationConfigTests {
    func parse(_ yaml: String) throws -> AgentConfig {
        try AgentConfig.parse(yaml, file: "/etc/agent/agent.yaml", environment: [:])
    }

    func problems(_ yaml: String) -> [String] {
        do { _ = try parse(yaml); return [] } catch let e as AgentConfig.Invalid { return e.problems.map(\.description) } catch { return ["\(error)"] }
    }

    @Test func isolationAndItsLimits() throws {
        let c = try parse("""
            apps:
              a: { connector: memory, auth: { type: none } }
              b:
                connector: memory
                isolation: process
                process: { callTimeout: 2.5, memoryLimitMiB: 512, openFiles: 64 }
                auth: { type: none }
            """)
        #expect(c.apps["a"]?.isolation == .inProcess)
        #expect(c.apps["b"]?.isolation == .process)
        #expect(c.apps["b"]?.process.callTimeout == 2.5)
        #expect(c.apps["b"]?.process.memoryLimit == 512 << 20)
        #expect(c.apps["b"]?.process.openFiles == 64)
        #expect(c.apps["a"]?.process == AgentConfig.ProcessOptions())
    }

    @Test func badIsolationSettingsNameTheKey() {
        let p = problems("""
            apps:
              a: { connector: memory, isolation: sandbox, auth: { type: none } }
              b: { connector: memory, process: { callTimeout: 3 }, auth: { type: none } }
              c: { connector: memory, isolation: process, process: { callTimeout: -1, memoryLimitMiB: 8, openFiles: 2, cpu: 1 }, auth: { type: none } }
            """)
        #expect(p.contains("/etc/agent/agent.yaml: apps.a.isolation: \"sandbox\" is not one of in-process, process"))
        #expect(p.contains("/etc/agent/agent.yaml: apps.b.process: only applies with isolation: process"))
        #expect(p.contains { $0.contains("apps.c.process.callTimeout: must be a number of seconds") })
        #expect(p.contains { $0.contains("apps.c.process.memoryLimitMiB: must be a whole number of MiB, at least 64") })
        #expect(p.contains { $0.contains("apps.c.process.openFiles: must be a whole number, at least 16") })
        #expect(p.contains { $0.contains("apps.c.process.cpu: unknown key") })
    }

    @Test func trustKeysMustBeReadableEd25519Keys() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("trust-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "not a key".write(toFile: dir + "/junk.pub", atomically: true, encoding: .utf8)
        do {
            _ = try AgentConfig.parse("plugins:\n  trust: { publicKeys: [junk.pub, missing.pub] }\n", file: dir + "/agent.yaml", environment: [:])
            Issue.record("accepted keys that are not keys")
        } catch let e as AgentConfig.Invalid {
            let text = e.problems.map(\.description)
            #expect(text.contains { $0.contains("plugins.trust.publicKeys[0]") && $0.contains("holds no PEM public key") })
            #expect(text.contains { $0.contains("plugins.trust.publicKeys[1]") && $0.contains("cannot read") })
        }
        #expect(problems("plugins:\n  trust: { publicKeys: [] }\n").contains { $0.contains("plugins.trust.publicKeys: must be a list") })
    }
}

@Suite struct PluginTrustTests {
    func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plugins-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        FileManager.default.createFile(atPath: dir + "/x.so", contents: Data([0x7F, 0x45, 0x4C, 0x46]), attributes: [.posixPermissions: 0o644])
        return dir
    }

    @Test func aFileOthersMayWriteIsRefused() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(PluginTrust.refusal(file: dir + "/x.so", directory: dir) == nil)
        chmod(dir + "/x.so", 0o666)
        #expect(PluginTrust.refusal(file: dir + "/x.so", directory: dir)?.contains("writable by others (mode 0666)") == true)
        chmod(dir + "/x.so", 0o664)
        #expect(PluginTrust.refusal(file: dir + "/x.so", directory: dir)?.contains("writable by its group") == true)
        chmod(dir + "/x.so", 0o644)
        chmod(dir, 0o777)
        #expect(PluginTrust.refusal(file: dir + "/x.so", directory: dir)?.contains("plugins directory") == true)
    }

    @Test func aFileOfAnotherUserIsRefused() throws {
        guard geteuid() == 0 else { return }  // only root can give a file away
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        chown(dir + "/x.so", 65534, 65534)
        #expect(PluginTrust.refusal(file: dir + "/x.so", directory: dir)?.contains("owned by uid 65534") == true)
    }

    @Test func withoutKeysNoSignatureIsNeeded() {
        #expect(PluginTrust.signatureRefusal(file: "/nonexistent.so", data: Data(), keys: []) == nil)
    }
}

@Suite struct FrameTests {
    @Test func framesSurviveBeingSplitAndJoined() throws {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let big = [UInt8](repeating: 0x41, count: 200_000)
        let bytes = Frame.encode(id: 7, kind: .reply, payload: Array("{\"a\":1}".utf8))
            + Frame.encode(id: 1 << 40, kind: .failure, payload: big)
            + Frame.encode(id: 9, kind: .reply, payload: [])
        let out = fds[1]
        let writer = Thread {
            // In small pieces: the reader must put frames back together across reads.
            var offset = 0
            while offset < bytes.count {
                let n = min(1000, bytes.count - offset)
                #expect(Frame.write(out, Array(bytes[offset..<(offset + n)])))
                offset += n
            }
            shutdown(out, Int32(SHUT_WR))
        }
        writer.start()
        let reader = Frame.Reader(fd: fds[0])
        guard case .frame(7, .reply, let p1) = reader.next(timeout: 5000) else { Issue.record("first frame"); return }
        #expect(Array(p1) == Array("{\"a\":1}".utf8))
        guard case .frame(1 << 40, .failure, let p2) = reader.next(timeout: 5000) else { Issue.record("second frame"); return }
        #expect(Array(p2) == big)
        guard case .frame(9, .reply, let p3) = reader.next(timeout: 5000) else { Issue.record("third frame"); return }
        #expect(p3.isEmpty)
        guard case .closed(nil) = reader.next(timeout: 5000) else { Issue.record("end"); return }
    }

    @Test func aLengthPastTheLimitIsNotAFrame() throws {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        #expect(Frame.write(fds[1], [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 2]))
        guard case .closed(let why?) = Frame.Reader(fd: fds[0]).next(timeout: 5000) else { Issue.record("accepted"); return }
        #expect(why.contains("bytes"))
    }

    @Test func howAChildEnded() {
        #expect(IsolatedConnector.reason(11) == "was killed by SIGSEGV")
        #expect(IsolatedConnector.reason(6) == "was killed by SIGABRT")
        #expect(IsolatedConnector.reason(3 << 8) == "exited with status 3")
    }
}
