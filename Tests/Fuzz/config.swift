// libFuzzer target: the configuration reader. Any text is a configuration or a list of
// problems naming the key, never a trap.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        _ = try AgentConfig.parse(text, file: "/etc/provisioning-agent/agent.yaml", environment: ["SECRET": "s3cret"])
    } catch let invalid as AgentConfig.Invalid {
        if !(!invalid.problems.isEmpty) { fatalError("a refused configuration names no problem") }
    } catch {}
    return 0
}
