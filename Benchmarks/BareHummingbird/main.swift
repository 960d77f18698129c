// The HTTP stack's own ceiling for `make bench`: Hummingbird answering GET /Users/{id} with a
// fixed SCIM user, no agent code at all.
import Hummingbird

let user = #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"2819c223-7f76-453a-919d-413861904646","userName":"bjensen@example.com","name":{"givenName":"Barbara","familyName":"Jensen"},"emails":[{"value":"bjensen@example.com","type":"work","primary":true}],"active":true,"meta":{"resourceType":"User","created":"2010-01-23T04:56:22Z","lastModified":"2011-05-13T04:42:34Z","location":"http://127.0.0.1/Users/2819c223-7f76-453a-919d-413861904646","version":"W/\"3694e05e9dff591\""}}"#
let port = Int(CommandLine.arguments.dropFirst().first ?? "8081") ?? 8081
let router = Router()
router.get("Users/:id") { _, _ in
    Response(status: .ok, headers: [.contentType: "application/scim+json"], body: .init(byteBuffer: ByteBuffer(string: user)))
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
