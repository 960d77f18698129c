import ConnectorSDK

/// How a user or group maps onto a spreadsheet row. Columns an admin recognises hold the
/// common attributes; everything else stays in the last column as JSON, so nothing is lost.
enum Rows {
    static let userColumns = ["id", "userName", "active", "givenName", "familyName", "displayName", "email", "title", "externalId", "created", "lastModified", "attributes"]
    static let groupColumns = ["id", "displayName", "externalId", "members", "created", "lastModified", "attributes"]

    static func userRow(_ user: JSON) -> [String] {
        var rest = user.objectValue ?? JSONObject()
        func take(_ key: String) -> String {
            defer { rest[key] = nil }
            switch rest[key] {
            case .string(let s)?: return s
            case .bool(let b)?: return b ? "true" : "false"
            default: return ""
            }
        }
        let id = take("id"), userName = take("userName"), active = take("active")
        var givenName = "", familyName = ""
        if case .object(var name)? = rest["name"] {
            givenName = name["givenName"]?.stringValue ?? ""
            familyName = name["familyName"]?.stringValue ?? ""
            name["givenName"] = nil
            name["familyName"] = nil
            rest["name"] = name.isEmpty ? nil : .object(name)
        }
        let displayName = take("displayName")
        var email = ""
        if case .array(var emails)? = rest["emails"], !emails.isEmpty {
            email = emails[0]["value"]?.stringValue ?? ""
            emails[0]["value"] = nil
            if emails.count == 1, emails[0] == ["type": "work", "primary": true] { rest["emails"] = nil } else { rest["emails"] = .array(emails) }
        }
        let title = take("title"), externalId = take("externalId")
        var created = "", lastModified = ""
        if case .object(let meta)? = rest["meta"] {
            created = meta["created"]?.stringValue ?? ""
            lastModified = meta["lastModified"]?.stringValue ?? ""
        }
        rest["meta"] = nil
        rest["schemas"] = nil
        let attributes = rest.isEmpty ? "" : JSON.object(rest).serialized()
        return [id, userName, active, givenName, familyName, displayName, email, title, externalId, created, lastModified, attributes]
    }

    static func user(from row: [String], columns: [String: Int]) throws(SCIMError) -> JSON {
        func col(_ name: String) -> String { columns[name].flatMap { $0 < row.count ? row[$0] : nil } ?? "" }
        var o = JSONObject()
        let attributes = col("attributes")
        if !attributes.isEmpty {
            guard case .object(let extra) = try JSON.parse(attributes) else { throw .invalidValue("attributes column is not a JSON object") }
            o = extra
        }
        var out: JSONObject = ["schemas": [.string(CoreSchemas.userID)], "id": .string(col("id")), "userName": .string(col("userName"))]
        for s in o["schemas"]?.arrayValue ?? [] where s.stringValue != CoreSchemas.userID { out["schemas"] = .array((out["schemas"]?.arrayValue ?? []) + [s]) }
        switch col("active").lowercased() {
        case "true", "1", "yes": out["active"] = true
        case "false", "0", "no": out["active"] = false
        default: break
        }
        var name = o["name"]?.objectValue ?? JSONObject()
        if !col("givenName").isEmpty { name["givenName"] = .string(col("givenName")) }
        if !col("familyName").isEmpty { name["familyName"] = .string(col("familyName")) }
        if !name.isEmpty { out["name"] = .object(name) }
        if !col("displayName").isEmpty { out["displayName"] = .string(col("displayName")) }
        var emails = o["emails"]?.arrayValue ?? []
        if !col("email").isEmpty {
            if emails.isEmpty { emails = [["type": "work", "primary": true]] }
            emails[0]["value"] = .string(col("email"))
            emails[0] = reordered(emails[0], first: "value")
        }
        if !emails.isEmpty { out["emails"] = .array(emails) }
        if !col("title").isEmpty { out["title"] = .string(col("title")) }
        if !col("externalId").isEmpty { out["externalId"] = .string(col("externalId")) }
        for m in o where !["name", "emails", "schemas"].contains(m.key) { out[m.key] = m.value }
        out["meta"] = meta(created: col("created"), lastModified: col("lastModified"))
        return .object(out)
    }

    static func groupRow(_ group: JSON) -> [String] {
        var rest = group.objectValue ?? JSONObject()
        let id = rest["id"]?.stringValue ?? "", displayName = rest["displayName"]?.stringValue ?? ""
        let externalId = rest["externalId"]?.stringValue ?? ""
        let members = group.memberIDs.joined(separator: " ")
        let meta = rest["meta"]?.objectValue
        for k in ["id", "displayName", "externalId", "members", "meta", "schemas"] { rest[k] = nil }
        return [id, displayName, externalId, members, meta?["created"]?.stringValue ?? "", meta?["lastModified"]?.stringValue ?? "",
                rest.isEmpty ? "" : JSON.object(rest).serialized()]
    }

    static func group(from row: [String], columns: [String: Int]) throws(SCIMError) -> JSON {
        func col(_ name: String) -> String { columns[name].flatMap { $0 < row.count ? row[$0] : nil } ?? "" }
        var out: JSONObject = ["schemas": [.string(CoreSchemas.groupID)], "id": .string(col("id")), "displayName": .string(col("displayName"))]
        if !col("externalId").isEmpty { out["externalId"] = .string(col("externalId")) }
        out["members"] = .array(col("members").split(separator: " ").map { ["value": .string(String($0))] })
        let attributes = col("attributes")
        if !attributes.isEmpty {
            guard case .object(let extra) = try JSON.parse(attributes) else { throw .invalidValue("attributes column is not a JSON object") }
            for m in extra { out[m.key] = m.value }
        }
        out["meta"] = meta(created: col("created"), lastModified: col("lastModified"))
        return .object(out)
    }

    static func meta(created: String, lastModified: String) -> JSON {
        var meta = JSONObject()
        if !created.isEmpty { meta["created"] = .string(created) }
        if !lastModified.isEmpty { meta["lastModified"] = .string(lastModified) }
        return .object(meta)
    }

    static func reordered(_ value: JSON, first key: String) -> JSON {
        guard case .object(let o) = value, let v = o[key] else { return value }
        var out: JSONObject = [key: v]
        for m in o where m.key != key { out[m.key] = m.value }
        return .object(out)
    }
}
