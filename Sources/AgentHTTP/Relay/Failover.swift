import AgentCore
import Foundation
import HTTPTypes
import Logging
import NIOCore
import SCIMKit

/// Hands one client request to an agent of its app, and again to another when the agent's
/// connection drops with the request in flight (README, "Failover"):
/// - GET, PUT, PATCH and DELETE, and searches, are sent again: they are idempotent (the PATCH
///   operations IdPs send — replace, add or remove a value — are too). A DELETE whose resend
///   finds the resource gone is answered 204: the lost agent deleted it.
/// - A create is never sent blindly again: the resource is first looked up by its `userName`
///   (or a group's `displayName`). Found, and created since the request was first handed
///   over, it is answered 201 as the lost agent would have; not found, the create is sent again.
/// - A Bulk request is not resent: its outcome is unknown, answered 502.
struct Failover {
    let directory: AgentDirectory
    let app: String
    let timeout: Double
    let logger: Logger

    enum Kind {
        case resend
        case create(attribute: String, value: String, listPath: String)
        case unsafe(String)
    }

    static func kind(method: HTTPRequest.Method, path: String, body: ByteBuffer) -> Kind {
        guard method == .post else { return .resend }
        let last = path.split(separator: "/").last.map(String.init) ?? ""
        if last == ".search" { return .resend }
        guard last == "Users" || last == "Groups" else { return .unsafe(last == "Bulk" ? "a Bulk request" : "a POST to \(last)") }
        let attribute = last == "Users" ? "userName" : "displayName"
        guard let value = (try? JSON.parse(body.readableBytesView))?[attribute]?.stringValue else {
            return .unsafe("a create without \(attribute)")
        }
        return .create(attribute: attribute, value: value, listPath: path)
    }

    func send(_ message: UplinkMessage, method: HTTPRequest.Method, path: String, body: ByteBuffer) async throws -> UplinkMessage {
        let kind = Self.kind(method: method, path: path, body: body)
        let firstSent = Date().timeIntervalSince1970
        var lost = false
        for _ in 0..<4 {
            guard let connection = await directory.pick(app: app) else {
                var error = SCIMError(status: 503, detail: "no agent connected to this relay serves app \(app)")
                error.retryAfter = 5
                throw SCIMErrorResponse(error: error)
            }
            switch await directory.exchange(on: connection, message, timeout: timeout) {
            case .answered(let answer):
                guard lost else { return answer }
                RelayMetrics.failover(app: app, outcome: "resent")
                let status = answer.header["status"]?.intValue ?? 0
                if method == .delete, status == 404 { return UplinkMessage(["type": "response", "status": 204, "headers": []]) }
                if case .create(let attribute, let value, let listPath) = kind, status == 409,
                    let created = try await lookUp(attribute, value, listPath, message, since: firstSent) {
                    return created
                }
                return answer
            case .notSent:
                continue
            case .timedOut:
                throw SCIMErrorResponse(error: SCIMError(status: 504, detail: "the agent did not answer within relay.limits.requestTimeout (\(Int(timeout)) s)"))
            case .lost:
                lost = true
                logger.warning("relay: the agent's connection dropped with the request in flight", metadata: ["app": .string(app), "method": .string(method.rawValue)])
                switch kind {
                case .resend:
                    continue
                case .unsafe(let what):
                    RelayMetrics.failover(app: app, outcome: "unsafe")
                    throw SCIMErrorResponse(error: SCIMError(status: 502, detail: "the agent serving \(what) was lost before it answered; its outcome is unknown"))
                case .create(let attribute, let value, let listPath):
                    if let created = try await lookUp(attribute, value, listPath, message, since: firstSent) {
                        RelayMetrics.failover(app: app, outcome: "created")
                        return created
                    }
                    continue
                }
            }
        }
        throw SCIMErrorResponse(error: SCIMError(status: 502, detail: "the agents of app \(app) kept dropping the request"))
    }

    /// The resource a lost create made, if it made one: `attribute eq value`, created since `since`.
    func lookUp(_ attribute: String, _ value: String, _ listPath: String, _ create: UplinkMessage, since: Double) async throws -> UplinkMessage? {
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        let filter = "\(attribute) eq \"\(escaped)\"".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        var query = create
        query.header["method"] = "GET"
        query.header["path"] = .string("\(listPath)?filter=\(filter)")
        query.header["headers"] = UplinkMessage.fields(UplinkMessage.fields(create.header["headers"]).filter { $0.name != .contentType && $0.name != .contentLength })
        query.body = ByteBuffer()
        let answer = try await send(query, method: .get, path: listPath, body: ByteBuffer())
        guard answer.header["status"]?.intValue == 200, let list = try? JSON.parse(answer.body.readableBytesView),
            let found = list["Resources"]?.arrayValue?.first else { return nil }
        // Created before this request was first handed over: a conflict the original answer would have named.
        if let created = found["meta"]?["created"]?.stringValue.flatMap(DateTime.parse), created < since - 60 { return nil }
        logger.info("relay: the lost agent had created the resource; answering its create", metadata: ["app": .string(app), "attribute": .string(attribute)])
        var headers: JSON = [["Content-Type", "application/scim+json"]]
        if let location = found["meta"]?["location"]?.stringValue { headers = [["Content-Type", "application/scim+json"], ["Location", .string(location)]] }
        return UplinkMessage(["type": "response", "status": 201, "headers": headers], body: ByteBuffer(bytes: found.serializedBytes()))
    }
}
