/// SCIM PATCH (RFC 7644 §3.5.2), tolerant of what identity providers really send.
public struct PatchOperation: Sendable, Equatable {
    public enum Op: String, Sendable { case add, remove, replace }

    public var op: Op
    public var path: PatchPath?
    public var value: JSON?

    public init(op: Op, path: PatchPath? = nil, value: JSON? = nil) {
        self.op = op
        self.path = path
        self.value = value
    }
}

/// `attrPath` / `valuePath ["." subAttr]` (RFC 7644 §3.5.2 PATH), or a bare extension URN.
public struct PatchPath: Sendable, Equatable, CustomStringConvertible {
    public var attribute: AttributePath
    public var filter: Filter?
    /// The sub-attribute after a value filter: `emails[type eq "work"].value`.
    public var subAttribute: String?
    public var text: String

    public init(parsing text: String) throws(SCIMError) {
        self.text = text
        guard !text.isEmpty, text.utf8.count <= FilterParser.maxLength else { throw .invalidPath("empty or oversized path") }
        if let open = text.firstIndex(of: "[") {
            guard let close = text.lastIndex(of: "]"), close > open else { throw .invalidPath("unbalanced '[' in path \"\(text)\"") }
            guard let attr = AttributePath(parsing: text[..<open]), attr.subAttribute == nil else {
                throw .invalidPath("invalid attribute before '[' in path \"\(text)\"")
            }
            let inner = String(text[text.index(after: open)..<close])
            do { filter = try FilterParser.parse(inner) } catch { throw .invalidPath("invalid filter in path \"\(text)\": \(error.detail)") }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                subAttribute = nil
            } else {
                guard rest.first == ".", AttributePath.isAttributeName(rest.dropFirst()) else {
                    throw .invalidPath("invalid text after ']' in path \"\(text)\"")
                }
                subAttribute = String(rest.dropFirst())
            }
            attribute = attr
        } else {
            guard let attr = AttributePath(parsing: text) else { throw .invalidPath("invalid path \"\(text)\"") }
            attribute = attr
            filter = nil
            subAttribute = nil
        }
    }

    public var description: String { text }
}

public struct PatchRequest: Sendable, Equatable {
    public static let schema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    public static let maxOperations = 1000

    public var operations: [PatchOperation]

    public init(operations: [PatchOperation]) { self.operations = operations }

    /// Reads a PatchOp message. Op names in any case; values kept as sent.
    public init(json: JSON) throws(SCIMError) {
        guard let ops = json["Operations"]?.arrayValue else {
            throw .invalidValue("a PATCH request needs an \"Operations\" array")
        }
        if let schemas = json["schemas"]?.arrayValue, !schemas.contains(where: { $0.stringValue?.caselessEquals(Self.schema) == true }) {
            throw SCIMError(status: 400, scimType: .invalidSyntax, detail: "a PATCH request must carry the schema \(Self.schema)")
        }
        guard !ops.isEmpty else { throw .invalidValue("a PATCH request needs at least one operation") }
        guard ops.count <= Self.maxOperations else {
            throw SCIMError(status: 413, detail: "a PATCH request may carry at most \(Self.maxOperations) operations, got \(ops.count)")
        }
        var operations: [PatchOperation] = []
        operations.reserveCapacity(ops.count)
        for (i, o) in ops.enumerated() {
            guard let name = o["op"]?.stringValue, let op = PatchOperation.Op(rawValue: name.lowercased()) else {
                throw .invalidValue("operation \(i + 1): \"op\" must be add, remove or replace")
            }
            var path: PatchPath?
            if let p = o["path"] {
                guard let text = p.stringValue else { throw .invalidPath("operation \(i + 1): \"path\" must be a string") }
                if !text.isEmpty { path = try PatchPath(parsing: text) }
            }
            let value = o["value"]
            if op != .remove && value == nil { throw .invalidValue("operation \(i + 1): \(op.rawValue) needs a value") }
            if op == .remove && path == nil { throw .noTarget("operation \(i + 1): remove needs a path") }
            operations.append(PatchOperation(op: op, path: path, value: value))
        }
        self.operations = operations
    }

    public var json: JSON {
        [
            "schemas": [.string(Self.schema)],
            "Operations": .array(operations.map { o in
                var obj: JSONObject = ["op": .string(o.op.rawValue)]
                if let p = o.path { obj["path"] = .string(p.text) }
                if let v = o.value { obj["value"] = v }
                return .object(obj)
            }),
        ]
    }
}
