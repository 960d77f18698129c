/// An RFC 7644 §3.12 error: what every failure becomes before it reaches a SCIM client.
public struct SCIMError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `scimType` keywords of RFC 7644 Table 9.
    public struct ScimType: Sendable, Hashable, RawRepresentable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let invalidFilter = ScimType(rawValue: "invalidFilter")
        public static let tooMany = ScimType(rawValue: "tooMany")
        public static let uniqueness = ScimType(rawValue: "uniqueness")
        public static let mutability = ScimType(rawValue: "mutability")
        public static let invalidSyntax = ScimType(rawValue: "invalidSyntax")
        public static let invalidPath = ScimType(rawValue: "invalidPath")
        public static let noTarget = ScimType(rawValue: "noTarget")
        public static let invalidValue = ScimType(rawValue: "invalidValue")
        public static let invalidVers = ScimType(rawValue: "invalidVers")
        public static let sensitive = ScimType(rawValue: "sensitive")
        /// RFC 9865 §2.3: a cursor that is not one this server issued for this query.
        public static let invalidCursor = ScimType(rawValue: "invalidCursor")
        /// RFC 9865 §2.3: a cursor older than the `cursorTimeout` the server advertises.
        public static let expiredCursor = ScimType(rawValue: "expiredCursor")
        /// RFC 9865 §2.3: a `count` outside 0…`maxPageSize` on a cursor-paged query.
        public static let invalidCount = ScimType(rawValue: "invalidCount")
    }

    public static let schema = "urn:ietf:params:scim:api:messages:2.0:Error"

    public var status: Int
    public var scimType: ScimType?
    public var detail: String
    /// Seconds for a `Retry-After` header (a 429 or 503 that says when to come back).
    public var retryAfter: Int?

    public init(status: Int, scimType: ScimType? = nil, detail: String) {
        self.status = status
        self.scimType = scimType
        self.detail = detail
    }

    public var description: String {
        "SCIM error \(status)\(scimType.map { " \($0)" } ?? ""): \(detail)"
    }

    public static func notFound(_ detail: String) -> SCIMError { SCIMError(status: 404, detail: detail) }
    public static func invalidValue(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: .invalidValue, detail: detail) }
    public static func invalidFilter(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: .invalidFilter, detail: detail) }
    public static func invalidPath(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: .invalidPath, detail: detail) }
    public static func noTarget(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: .noTarget, detail: detail) }
    public static func mutability(_ detail: String) -> SCIMError { SCIMError(status: 400, scimType: .mutability, detail: detail) }
    public static func uniqueness(_ detail: String) -> SCIMError { SCIMError(status: 409, scimType: .uniqueness, detail: detail) }
    public static func notImplemented(_ detail: String) -> SCIMError { SCIMError(status: 501, detail: detail) }
    /// 412: the resource is no longer the version a conditional write was computed from.
    public static func changed(_ detail: String) -> SCIMError { SCIMError(status: 412, detail: detail) }

    /// The error message body. `status` is a string, as RFC 7644 writes it.
    public var json: JSON {
        var o = JSONObject()
        o["schemas"] = [.string(Self.schema)]
        o["status"] = .string(String(status))
        if let scimType { o["scimType"] = .string(scimType.rawValue) }
        o["detail"] = .string(detail)
        return .object(o)
    }

    /// Reads an error body that came from a connector or a remote server.
    public init?(json: JSON, fallbackStatus: Int? = nil) {
        guard let o = json.objectValue else { return nil }
        let status = o["status"].flatMap { $0.stringValue.flatMap(Int.init) ?? $0.intValue } ?? fallbackStatus
        guard let status, (400...599).contains(status) else { return nil }
        self.init(
            status: status, scimType: o["scimType"]?.stringValue.map(ScimType.init(rawValue:)),
            detail: o["detail"]?.stringValue ?? "error \(status)")
    }
}
