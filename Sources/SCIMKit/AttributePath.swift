/// `[URN ":"] attribute ["." subAttribute]` (RFC 7644 §3.10). Names compare case-insensitively.
public struct AttributePath: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var schema: String?
    public var name: String
    public var subAttribute: String?

    public init(schema: String? = nil, name: String, subAttribute: String? = nil) {
        self.schema = schema
        self.name = name
        self.subAttribute = subAttribute
    }

    /// Parses a path; returns nil when it is not one.
    public init?(parsing text: Substring) {
        var rest = text
        var schema: String?
        let u = text.utf8
        if u.count > 4, u.starts(with: "urn:".utf8, by: { $0 | 0x20 == $1 }) {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            schema = String(text[..<colon])
            rest = text[text.index(after: colon)...]
        }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy(Self.isAttributeName) else { return nil }
        self.init(schema: schema, name: String(parts[0]), subAttribute: parts.count == 2 ? String(parts[1]) : nil)
    }

    public init?(parsing text: String) { self.init(parsing: Substring(text)) }

    /// ATTRNAME = ALPHA *(nameChar); `$ref` is allowed as RFC 7643 uses it.
    static func isAttributeName(_ s: Substring) -> Bool {
        guard let first = s.utf8.first else { return false }
        if s == "$ref" { return true }
        guard first.isASCIILetter else { return false }
        return s.utf8.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    public var description: String {
        var s = schema.map { $0 + ":" } ?? ""
        s += name
        if let subAttribute { s += "." + subAttribute }
        return s
    }

    public static func == (lhs: AttributePath, rhs: AttributePath) -> Bool {
        lhs.name.caselessEquals(rhs.name) && optionalCaseless(lhs.schema, rhs.schema)
            && optionalCaseless(lhs.subAttribute, rhs.subAttribute)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name.lowercased())
        hasher.combine(schema?.lowercased())
        hasher.combine(subAttribute?.lowercased())
    }

    /// The same path without its sub-attribute.
    public var parent: AttributePath { AttributePath(schema: schema, name: name) }
}

func optionalCaseless(_ a: String?, _ b: String?) -> Bool {
    switch (a, b) {
    case (nil, nil): true
    case (let x?, let y?): x.caselessEquals(y)
    default: false
    }
}

extension UInt8 {
    var isASCIILetter: Bool { (self >= 65 && self <= 90) || (self >= 97 && self <= 122) }
    var isASCIIDigit: Bool { self >= 48 && self <= 57 }
}
