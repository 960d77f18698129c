// libFuzzer target: the flatfile connector's CSV reader and row decoding (what it reads from
// a spreadsheet an admin edited). Rows it reads write back as the same rows.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let rows = try? CSV.decode(Array(UnsafeBufferPointer(start: data, count: size))), let header = rows.first else { return 0 }
    var columns: [String: Int] = [:]
    for (i, name) in header.enumerated() where columns[name] == nil { columns[name] = i }
    for row in rows.dropFirst() {
        _ = try? Rows.user(from: row, columns: columns)
        _ = try? Rows.group(from: row, columns: columns)
    }
    let encoded = CSV.encode(rows)
    let again: [[String]]
    do { again = try CSV.decode(Array(encoded.utf8)) } catch { fatalError("\(rows) encode as \(encoded.debugDescription), which does not decode: \(error)") }
    if !(again == rows) { fatalError("CSV round trip changed the rows: \(rows) became \(again)") }
    return 0
}
