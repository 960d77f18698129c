import SCIMKit

/// POST /Bulk (RFC 7644 §3.7): operations in order, `bulkId:` references resolved to the ids
/// of resources created earlier in the same request, `failOnErrors` honoured.
extension SCIMService {
    public static let bulkRequestSchema = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
    public static let bulkResponseSchema = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"

    public func bulk(app: String, body: JSON, baseURL: String) async throws(SCIMError) -> SCIMResult {
        let limits = try await capabilities(app: app)
        let presentation = Presentation(baseURL: baseURL)
        guard let ops = body["Operations"]?.arrayValue else { throw .invalidValue("a bulk request needs an \"Operations\" array") }
        guard ops.count <= limits.bulkMaxOperations else {
            throw SCIMError(status: 413, detail: "a bulk request may carry at most \(limits.bulkMaxOperations) operations, got \(ops.count)")
        }
        let failOnErrors = body["failOnErrors"]?.intValue ?? 0
        var ids: [String: String] = [:]
        var results: [JSON] = []
        var errors = 0
        for (index, op) in ops.enumerated() {
            if failOnErrors > 0 && errors >= failOnErrors { break }
            let method = (op["method"]?.stringValue ?? "").uppercased()
            let bulkId = op["bulkId"]?.stringValue
            var entry: JSONObject = ["method": .string(method)]
            if let bulkId { entry["bulkId"] = .string(bulkId) }
            do {
                guard var path = op["path"]?.stringValue else { throw SCIMError.invalidValue("operation \(index + 1) has no path") }
                path = try Self.resolve(path, ids)
                let data = try op["data"].map { d throws(SCIMError) in try Self.resolve(d, ids) }
                let (kind, id) = try Self.bulkTarget(path)
                var caller = Caller.current
                caller?.bulkIndex = index
                let result: SCIMResult = try await Caller.$current.withValue(caller) { () async throws(SCIMError) -> SCIMResult in
                switch (method, id) {
                case ("POST", nil):
                    guard bulkId != nil else { throw SCIMError.invalidValue("a POST in a bulk request needs a bulkId") }
                    return try await create(app: app, kind: kind, body: data ?? .null, presentation: presentation)
                case ("PUT", let id?):
                    return try await replace(app: app, kind: kind, id: id, body: data ?? .null, ifMatch: op["version"]?.stringValue, presentation: presentation)
                case ("PATCH", let id?):
                    return try await patch(app: app, kind: kind, id: id, body: data ?? .null, ifMatch: op["version"]?.stringValue, presentation: presentation)
                case ("DELETE", let id?):
                    return try await delete(app: app, kind: kind, id: id, ifMatch: op["version"]?.stringValue)
                default:
                    throw SCIMError.invalidValue("operation \(index + 1): \(method) \(path) is not a bulk operation")
                }
                }
                if method == "POST", let bulkId, let newID = result.body?["id"]?.stringValue { ids[bulkId] = newID }
                entry["status"] = .string(String(result.status))
                if let location = result.body?["meta"]?["location"] ?? id.map({ .string(baseURL + kind.endpoint + "/" + $0) }) { entry["location"] = location }
                if let etag = result.etag { entry["version"] = .string(etag) }
            } catch {
                let error = error as? SCIMError ?? SCIMError(status: 500, detail: "\(error)")
                errors += 1
                entry["status"] = .string(String(error.status))
                entry["response"] = error.json
                if let path = op["path"]?.stringValue { entry["location"] = .string(baseURL + path) }
            }
            results.append(.object(entry))
        }
        return SCIMResult(status: 200, body: ["schemas": [.string(Self.bulkResponseSchema)], "Operations": .array(results)])
    }

    static func bulkTarget(_ path: String) throws(SCIMError) -> (Kind, String?) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        guard let first = parts.first, parts.count <= 2, let kind = Kind(endpoint: "/" + String(first)) else {
            throw .invalidValue("bulk path \(path) is not /Users[/id] or /Groups[/id]")
        }
        return (kind, parts.count == 2 ? String(parts[1]) : nil)
    }

    /// Replaces `bulkId:x` with the id created for x; an unknown bulkId is an error.
    static func resolve(_ value: JSON, _ ids: [String: String]) throws(SCIMError) -> JSON {
        switch value {
        case .string(let s): return .string(try resolve(s, ids))
        case .array(let a):
            var out: [JSON] = []
            for e in a { out.append(try resolve(e, ids)) }
            return .array(out)
        case .object(let o):
            var out = JSONObject()
            for m in o { out[m.key] = try resolve(m.value, ids) }
            return .object(out)
        default: return value
        }
    }

    static func resolve(_ s: String, _ ids: [String: String]) throws(SCIMError) -> String {
        guard let r = s.range(of: "bulkId:") else { return s }
        let name = String(s[r.upperBound...].prefix { $0 != "/" && $0 != "\"" })
        guard let id = ids[name] else {
            throw SCIMError(status: 409, scimType: .invalidValue, detail: "bulkId \(name) does not refer to a resource created earlier in this request")
        }
        return s.replacingOccurrences(of: "bulkId:" + name, with: id)
    }
}
