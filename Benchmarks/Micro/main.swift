// Microbenchmarks for `make bench` (release build): medians of many timed batches.
import AgentCore
import Foundation
import Logging
import SCIMKit

func median(_ name: String, iterations: Int = 20_000, batches: Int = 15, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<3 { try body() }  // warm up
    for _ in 0..<batches {
        let start = ContinuousClock.now
        for _ in 0..<iterations { try body() }
        let d = ContinuousClock.now - start
        samples.append((Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9) / Double(iterations))
    }
    samples.sort()
    let m = samples[samples.count / 2]
    print("\(name)\t\(String(format: "%.0f", m)) ns")
    return m
}

@inline(never) func consume<T>(_ x: T) { withExtendedLifetime(x) {} }

let userText = #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"2819c223-7f76-453a-919d-413861904646","userName":"john.doe@example.com","name":{"givenName":"John","familyName":"Doe"},"emails":[{"value":"john.doe@example.com","type":"work","primary":true}],"active":true,"meta":{"resourceType":"User","created":"2010-01-23T04:56:22Z","lastModified":"2011-05-13T04:42:34Z"}}"#
let user = try JSON.parse(userText)
let filterText = #"userName eq "john.doe@example.com""#
let filter = try Filter(parsing: filterText)
let evaluator = FilterEvaluator(schema: CoreSchemas.userResource)
let deactivate = try JSON.parse(#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#)
let applier = PatchApplier(schema: CoreSchemas.userResource)

var results: [String: Double] = [:]
results["filter_parse"] = try median("filter parse") { consume(try Filter(parsing: filterText)) }
results["filter_eval"] = median("filter evaluate") { consume(evaluator.matches(filter, user)) }
results["patch_apply"] = try median("Okta deactivate PATCH (parse + apply)") { consume(try applier.apply(try PatchRequest(json: deactivate), to: user)) }
results["json_roundtrip"] = try median("User JSON decode + encode") { consume(try JSON.parse(userText).serialized()) }

// One ABI round trip host → C plugin → host emit, on the memory connector's `test`.
if CommandLine.arguments.count > 1 {
    let plugins = CommandLine.arguments[1]
    let dir = NSTemporaryDirectory() + "agent-micro-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let config = try AgentConfig.parse(
        "plugins:\n  directory: \(plugins)\napps:\n  bench: { connector: memory, auth: { type: none } }\n",
        file: dir + "/agent.yaml", environment: [:])
    var logger = Logger(label: "micro")
    logger.logLevel = .error
    let registry = try ConnectorRegistry(config: config, logger: logger)
    registry.install(file: plugins + "/memory.so")
    let instance = try await registry.withLease(app: "bench") { lease in lease.target as! ConnectorInstance }
    results["abi_roundtrip"] = try median("ABI round trip (memory test)", iterations: 50_000) { consume(try instance.testNow()) }
    await registry.shutdown()
}
let json = JSON.object(JSONObject(results.sorted { $0.key < $1.key }.map { .init(key: $0.key, value: .number($0.value)) }))
FileManager.default.createFile(atPath: "/tmp/agent-micro.json", contents: Data(json.serialized().utf8))
