// libFuzzer target: the filter parser and evaluator. An accepted filter prints as text that
// parses to the same filter, and evaluates against the RFC 7643 example users without trapping.
import SCIMKit

let users: [JSON] = [
    #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"id":"2819c223-7f76-453a-919d-413861904646","externalId":"701984","userName":"bjensen@example.com","name":{"formatted":"Ms. Barbara J Jensen, III","familyName":"Jensen","givenName":"Barbara"},"displayName":"Babs Jensen","emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],"active":true,"title":"Tour Guide","meta":{"created":"2010-01-23T04:56:22Z","lastModified":"2011-05-13T04:42:34Z"},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","manager":{"value":"26118915"}}}"#,
    #"{"id":"x","userName":"Jdoe","active":false,"emails":[],"meta":{"lastModified":"2012-05-13T04:42:34Z"}}"#,
].map { try! JSON.parse(Array($0.utf8)) }
let evaluator = FilterEvaluator(schema: CoreSchemas.userResource)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let filter = try? FilterParser.parse(text) else { return 0 }
    guard let again = try? FilterParser.parse(filter.description) else { fatalError("the canonical text of \(text) does not parse: \(filter.description)") }
    if !(again == filter) { fatalError("\(text) prints as \(filter.description), which parses differently") }
    let canonical = filter.canonicalized(by: CoreSchemas.userResource)
    for u in users { _ = evaluator.matches(canonical, u) }
    _ = try? Query(json: ["filter": filter.json]).json
    return 0
}
