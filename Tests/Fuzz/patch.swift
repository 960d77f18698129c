// libFuzzer target: PATCH parsing and application, and the standardized form sent to remote
// servers, on the RFC 7643 example user and group.
import SCIMKit

let user = try! JSON.parse(Array(#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"2819c223","userName":"bjensen@example.com","name":{"familyName":"Jensen","givenName":"Barbara"},"emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],"active":true,"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984"}}"#.utf8))
let group = try! JSON.parse(Array(#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"e9e30dba","displayName":"Tour Guides","members":[{"value":"2819c223","type":"User"},{"value":"902c246b","type":"User"}]}"#.utf8))

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let body = try? JSON.parse(UnsafeBufferPointer(start: data, count: size)), let request = try? PatchRequest(json: body) else { return 0 }
    for (schema, resource) in [(CoreSchemas.userResource, user), (CoreSchemas.groupResource, group)] {
        let applier = PatchApplier(schema: schema)
        _ = try? applier.apply(request, to: resource)
        let standard = request.standardized(for: schema)
        _ = try? applier.apply(standard, to: resource)
        // What goes to a remote server reads back as a request.
        guard (try? PatchRequest(json: standard.json)) != nil else { fatalError("standardized request does not parse: \(standard.json.serialized())") }
        _ = schema.withoutUnknownAttributes(resource)
    }
    return 0
}
