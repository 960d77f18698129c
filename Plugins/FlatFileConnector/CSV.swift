/// RFC 4180 CSV: fields with commas, quotes or line breaks are quoted, quotes doubled.
enum CSV {
    static func encode(_ rows: [[String]]) -> String {
        var out = ""
        for row in rows {
            // One empty field is written quoted: an empty line reads as no row at all.
            if row == [""] { out += "\"\"\r\n"; continue }
            for (i, field) in row.enumerated() {
                if i > 0 { out += "," }
                // Quoted too: a field that starts as a byte-order mark does, which would read as one.
                if field.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) || field.utf8.starts(with: [0xEF, 0xBB, 0xBF]) {
                    out += "\"" + Self.doublingQuotes(field) + "\""
                } else {
                    out += field
                }
            }
            out += "\r\n"
        }
        return out
    }

    /// Every `"` doubled, byte by byte: a search by Characters misses a quote that a preceding
    /// prepend mark (U+06DD) joins into one grapheme (found by the fuzzer).
    static func doublingQuotes(_ field: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(field.utf8.count + 2)
        for b in field.utf8 {
            if b == 0x22 { bytes.append(0x22) }
            bytes.append(b)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    struct ParseError: Error { var line: Int; var message: String }

    static func decode(_ bytes: [UInt8]) throws(ParseError) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field: [UInt8] = []
        var i = 0
        var line = 1
        var inQuotes = false
        var fieldStarted = false
        var start = 0
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { start = 3 }  // a spreadsheet's UTF-8 BOM
        i = start
        func endField() { row.append(String(decoding: field, as: UTF8.self)); field.removeAll(keepingCapacity: true); fieldStarted = false }
        while i < bytes.count {
            let c = bytes[i]
            if inQuotes {
                if c == 0x22 {
                    if i + 1 < bytes.count, bytes[i + 1] == 0x22 { field.append(0x22); i += 2; continue }
                    inQuotes = false
                } else {
                    if c == 0x0A { line += 1 }
                    field.append(c)
                }
                i += 1
                continue
            }
            switch c {
            case 0x22:
                guard field.isEmpty else { throw ParseError(line: line, message: "quote inside an unquoted field") }
                inQuotes = true
                fieldStarted = true
            case 0x2C: endField(); fieldStarted = true
            case 0x0D: break
            case 0x0A:
                if fieldStarted || !field.isEmpty || !row.isEmpty { endField(); rows.append(row) }
                row = []
                line += 1
            default: field.append(c)
            }
            i += 1
        }
        if inQuotes { throw ParseError(line: line, message: "unterminated quoted field") }
        if fieldStarted || !field.isEmpty || !row.isEmpty { endField(); rows.append(row) }
        return rows
    }
}
