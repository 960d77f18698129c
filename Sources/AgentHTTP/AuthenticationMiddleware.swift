import AgentCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
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
        if case .relayed(let relayed) = context.peer {
            credential = relayed.credential  // checked by the relay, against its own configuration of the app
        } else {
            credential = try Self.check(auth, request, realm: app, what: "app \(app)")
        }
        // Who is asking, for the audit lines of the changes this request makes.
        let caller = Caller(requestId: context.id, credential: credential, remoteAddress: context.clientAddress)
        return try await Caller.$current.withValue(caller) { try await next(request, context) }
    }

    /// Checks a request against a credential of the configuration; returns which credential
    /// it was ("basic okta", "header Authorization", "none") or throws the 401 with its challenge.
    static func check(_ auth: AgentConfig.Auth, _ request: Request, realm: String, what: String) throws -> String {
        switch auth {
        case .none:
            return "none"
        case .basic(let username, let password):
            guard let header = request.headers[.authorization], checkBasic(header, username: username, password: password) else {
                throw SCIMErrorResponse(
                    error: SCIMError(status: 401, detail: "authentication required for \(what)"),
                    extraHeaders: [.wwwAuthenticate: "Basic realm=\"\(realm)\", charset=\"UTF-8\""])
            }
            return "basic \(username)"
        case .header(let name, let value):
            let given = HTTPField.Name(name).flatMap { request.headers[$0] } ?? ""
            guard ConstantTime.equals(Array(given.utf8), Array(value.utf8)) else {
                let challenge = name.caselessEquals("Authorization") ? "Bearer realm=\"\(realm)\"" : "Header realm=\"\(realm)\", name=\"\(name)\""
                throw SCIMErrorResponse(
                    error: SCIMError(status: 401, detail: "authentication required for \(what)"),
                    extraHeaders: [.wwwAuthenticate: challenge])
            }
            return "header \(name)"
        }
    }

    static func checkBasic(_ header: String, username: String, password: String) -> Bool {
        guard let decoded = basicCredentials(header) else { return false }
        let expected = Array("\(username):\(password)".utf8)
        return ConstantTime.equals(Array(decoded), expected)
    }

    /// The decoded `user:password` bytes of an `Authorization: Basic` value.
    static func basicCredentials(_ header: String) -> Data? {
        guard header.count > 6, header.prefix(6).lowercased() == "basic " else { return nil }
        return Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces))
    }
}

/// In front of `/status` and `/metrics`: their credential when one is configured; without one,
/// `/status` answers loopback clients only and `/metrics` anyone (README, "Metrics").
struct EndpointAccessMiddleware: RouterMiddleware {
    typealias Context = AgentRequestContext
    let endpoint: String
    let auth: AgentConfig.Auth?
    /// Only `/status` is loopback-only by default (`server.status.auth`).
    let loopbackOnly: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let auth {
            _ = try AuthenticationMiddleware.check(auth, request, realm: "provisioning-agent", what: endpoint)
        } else if loopbackOnly, !context.isLoopbackClient {
            throw SCIMErrorResponse(error: SCIMError(
                status: 403, detail: "\(endpoint) answers loopback clients only unless server.status.auth sets a credential"))
        }
        return try await next(request, context)
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
