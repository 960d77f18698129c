import AgentCore
import Foundation
import HTTPTypes
import Hummingbird
import SCIMKit

/// On the app route groups: checks the app's credentials (basic, a header, or none) before
/// its route runs. Secrets are compared in constant time and never logged.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = AgentRequestContext
    let registry: ConnectorRegistry

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let app = context.app
        guard let auth = registry.auth(app: app) else {
            throw SCIMErrorResponse(error: .notFound("no app named \(app)"))
        }
        let credential: String
        switch auth {
        case .none:
            credential = "none"
        case .basic(let username, let password):
            guard let header = request.headers[.authorization], Self.checkBasic(header, username: username, password: password) else {
                throw SCIMErrorResponse(
                    error: SCIMError(status: 401, detail: "authentication required for app \(app)"),
                    extraHeaders: [.wwwAuthenticate: "Basic realm=\"\(app)\", charset=\"UTF-8\""])
            }
            credential = "basic \(username)"
        case .header(let name, let value):
            let given = HTTPField.Name(name).flatMap { request.headers[$0] } ?? ""
            guard ConstantTime.equals(Array(given.utf8), Array(value.utf8)) else {
                let challenge = name.caselessEquals("Authorization") ? "Bearer realm=\"\(app)\"" : "Header realm=\"\(app)\", name=\"\(name)\""
                throw SCIMErrorResponse(
                    error: SCIMError(status: 401, detail: "authentication required for app \(app)"),
                    extraHeaders: [.wwwAuthenticate: challenge])
            }
            credential = "header \(name)"
        }
        // Who is asking, for the audit lines of the changes this request makes.
        let caller = Caller(requestId: context.id, credential: credential, remoteAddress: context.channel.remoteAddress?.ipAddress)
        return try await Caller.$current.withValue(caller) { try await next(request, context) }
    }

    static func checkBasic(_ header: String, username: String, password: String) -> Bool {
        guard header.count > 6, header.prefix(6).lowercased() == "basic " else { return false }
        guard let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)) else { return false }
        let expected = Array("\(username):\(password)".utf8)
        return ConstantTime.equals(Array(decoded), expected)
    }
}

enum ConstantTime {
    /// Compares without an early exit, so timing says nothing about where inputs differ.
    /// The loop runs over the expected value's length whatever the given length is.
    static func equals(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: given.count ^ expected.count) | UInt8(truncatingIfNeeded: (given.count ^ expected.count) >> 8)
        if given.count != expected.count { difference |= 1 }
        for i in 0..<expected.count {
            let g = given.isEmpty ? 0 : given[i % given.count]
            difference |= g ^ expected[i]
        }
        return difference == 0
    }
}
