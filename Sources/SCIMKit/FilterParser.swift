/// Recursive-descent parser for the complete RFC 7644 §3.4.2.2 grammar:
/// `or` binds weaker than `and`, which binds weaker than `not` and parentheses.
public struct FilterParser {
    public static let maxDepth = 64
    public static let maxLength = 64 * 1024

    private let bytes: [UInt8]
    private var position = 0
    private var depth = 0

    public static func parse(_ text: String) throws(SCIMError) -> Filter {
        guard text.utf8.count <= maxLength else {
            throw .invalidFilter("filter of \(text.utf8.count) bytes is longer than the limit of \(maxLength)")
        }
        var parser = FilterParser(bytes: Array(text.utf8))
        parser.skipSpaces()
        guard !parser.atEnd else { throw .invalidFilter("empty filter") }
        let filter = try parser.parseOr(insideValuePath: false)
        parser.skipSpaces()
        guard parser.atEnd else { throw parser.error("unexpected text") }
        return filter
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private var atEnd: Bool { position >= bytes.count }
    private var current: UInt8? { atEnd ? nil : bytes[position] }

    private func error(_ message: String) -> SCIMError {
        let excerpt = String(decoding: bytes[position..<min(bytes.count, position + 20)], as: UTF8.self)
        return .invalidFilter("\(message) at position \(position + 1)\(atEnd ? " (end of filter)" : " near '\(excerpt)'")")
    }

    private mutating func skipSpaces() {
        while let c = current, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { position += 1 }
    }

    /// Matches a keyword (lowercase ASCII, compared ignoring case) that is followed by a delimiter.
    private mutating func keyword(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { return false }
        for i in 0..<count where bytes[position + i] | 0x20 != word.utf8Start[i] { return false }
        let next = position + count < bytes.count ? bytes[position + count] : 0x20
        guard next == 0x20 || next == UInt8(ascii: "(") || next == 0x09 || next == 0x0A || next == 0x0D else { return false }
        position += count
        return true
    }

    private mutating func enter() throws(SCIMError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw error("filter nested deeper than \(Self.maxDepth) levels") }
    }

    private mutating func parseOr(insideValuePath: Bool) throws(SCIMError) -> Filter {
        try enter()
        defer { depth -= 1 }
        var left = try parseAnd(insideValuePath: insideValuePath)
        while true {
            let save = position
            skipSpaces()
            guard save != position, keyword("or") else { position = save; return left }
            skipSpaces()
            left = .or(left, try parseAnd(insideValuePath: insideValuePath))
        }
    }

    private mutating func parseAnd(insideValuePath: Bool) throws(SCIMError) -> Filter {
        var left = try parseUnary(insideValuePath: insideValuePath)
        while true {
            let save = position
            skipSpaces()
            guard save != position, keyword("and") else { position = save; return left }
            skipSpaces()
            left = .and(left, try parseUnary(insideValuePath: insideValuePath))
        }
    }

    private mutating func parseUnary(insideValuePath: Bool) throws(SCIMError) -> Filter {
        try enter()
        defer { depth -= 1 }
        if current == UInt8(ascii: "(") {
            position += 1
            skipSpaces()
            let inner = try parseOr(insideValuePath: insideValuePath)
            skipSpaces()
            guard current == UInt8(ascii: ")") else { throw error("expected ')'") }
            position += 1
            return inner
        }
        let save = position
        if keyword("not") {
            skipSpaces()
            guard current == UInt8(ascii: "(") else { throw error("expected '(' after 'not'") }
            return .not(try parseUnary(insideValuePath: insideValuePath))
        }
        position = save
        return try parseAttributeExpression(insideValuePath: insideValuePath)
    }

    private mutating func parseAttributeExpression(insideValuePath: Bool) throws(SCIMError) -> Filter {
        let start = position
        while let c = current, c != 0x20, c != UInt8(ascii: "["), c != UInt8(ascii: "]"), c != UInt8(ascii: "("),
            c != UInt8(ascii: ")"), c != UInt8(ascii: "\"")
        {
            position += 1
        }
        guard position > start else { throw error("expected an attribute path") }
        let text = String(decoding: bytes[start..<position], as: UTF8.self)
        guard let path = AttributePath(parsing: text) else {
            position = start
            throw error("invalid attribute path '\(text)'")
        }
        if current == UInt8(ascii: "[") {
            guard !insideValuePath else { throw error("value paths cannot be nested") }
            guard path.subAttribute == nil else { throw error("a value path applies to an attribute, not a sub-attribute") }
            position += 1
            skipSpaces()
            let inner = try parseOr(insideValuePath: true)
            skipSpaces()
            guard current == UInt8(ascii: "]") else { throw error("expected ']'") }
            position += 1
            guard current == UInt8(ascii: ".") else { return .valuePath(path, inner) }
            // `emails[type eq "work"].value eq "x"`: outside RFC 7644's grammar, but what
            // Microsoft Entra ID sends. It means `emails[type eq "work" and value eq "x"]`.
            position += 1
            let subStart = position
            while let c = current, c != 0x20, c != UInt8(ascii: "["), c != UInt8(ascii: "]"), c != UInt8(ascii: "("),
                c != UInt8(ascii: ")"), c != UInt8(ascii: "\""), c != UInt8(ascii: ".")
            {
                position += 1
            }
            let name = String(decoding: bytes[subStart..<position], as: UTF8.self)
            guard let sub = AttributePath(parsing: name), sub.schema == nil, sub.subAttribute == nil else {
                position = subStart
                throw error("expected a sub-attribute name after ']'")
            }
            return .valuePath(path, .and(inner, try parseCondition(on: sub, text: "\(text)[…].\(name)")))
        }
        return try parseCondition(on: path, text: text)
    }

    /// ` pr` or ` op value` after an attribute path.
    private mutating func parseCondition(on path: AttributePath, text: String) throws(SCIMError) -> Filter {
        guard current == 0x20 else { throw error("expected an operator after '\(text)'") }
        skipSpaces()
        if keywordAtEndAllowed("pr") { return .present(path) }
        guard let op = readOperator() else { throw error("unknown operator") }
        guard current == 0x20 else { throw error("expected a value after '\(op.rawValue)'") }
        skipSpaces()
        return .compare(path, op, try parseValue())
    }

    private mutating func keywordAtEndAllowed(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { return false }
        for i in 0..<count where bytes[position + i] | 0x20 != word.utf8Start[i] { return false }
        if position + count < bytes.count {
            let next = bytes[position + count]
            guard next == 0x20 || next == UInt8(ascii: ")") || next == UInt8(ascii: "]") else { return false }
        }
        position += count
        return true
    }

    private mutating func readOperator() -> Filter.Operator? {
        guard position + 2 <= bytes.count else { return nil }
        let text = String(decoding: [bytes[position] | 0x20, bytes[position + 1] | 0x20], as: UTF8.self)
        guard let op = Filter.Operator(rawValue: text) else { return nil }
        position += 2
        return op
    }

    private mutating func parseValue() throws(SCIMError) -> JSON {
        guard let c = current else { throw error("expected a value") }
        if c == UInt8(ascii: "\"") {
            // A JSON string: find its end honouring escapes, then decode it as JSON.
            let start = position
            position += 1
            while let d = current, d != UInt8(ascii: "\"") { position += d == UInt8(ascii: "\\") ? 2 : 1 }
            // A backslash as the last byte steps past the end (found by the fuzzer: the
            // error's excerpt then trapped on a range past the end).
            position = min(position, bytes.count)
            guard current == UInt8(ascii: "\"") else { throw error("unterminated string") }
            position += 1
            do {
                return try JSON.parse(bytes[start..<position])
            } catch {
                position = start
                throw self.error("invalid string value")
            }
        }
        let start = position
        while let d = current, d != 0x20, d != UInt8(ascii: ")"), d != UInt8(ascii: "]") { position += 1 }
        let word = String(decoding: bytes[start..<position], as: UTF8.self)
        switch word.lowercased() {
        case "true": return .bool(true)
        case "false": return .bool(false)
        case "null": return .null
        default:
            if let v = try? JSON.parse(word), case .number = v { return v }
            position = start
            throw error("invalid value '\(word)' (expected a string, number, true, false or null)")
        }
    }
}

extension Filter {
    public init(parsing text: String) throws(SCIMError) { self = try FilterParser.parse(text) }
}
