import CMariaDB
import ConnectorSDK
import Foundation

/// A value bound to a `?` placeholder. Request values only ever reach MariaDB this way.
enum SQLValue: Equatable {
    case string(String)
    case int(Int64)
    case null
}

struct ConnectionSettings {
    var host: String?
    var port: UInt32
    var socket: String?
    var user: String
    var password: String
    var database: String
    var tls: TLSMode
    var caFile: String?
    var connectTimeout: UInt32

    enum TLSMode: String { case off, required, verifyCA = "verify-ca" }
}

/// One libmariadb connection with a cache of prepared statements. Not thread-safe: the pool
/// hands it to one caller at a time.
final class MariaDBConnection {
    let handle: UnsafeMutablePointer<MYSQL>
    private var statements: [String: UnsafeMutablePointer<MYSQL_STMT>] = [:]
    private(set) var broken = false
    /// MariaDB 10.5 and later answer `INSERT … RETURNING` with the stored rows; MySQL does not.
    private(set) var supportsReturning = false

    /// Prepared statements kept per connection; multi-row INSERTs of many sizes would
    /// otherwise pile up on the server.
    static let statementCacheSize = 128

    init(_ s: ConnectionSettings) throws(SCIMError) {
        guard let h = mysql_init(nil) else { throw SCIMError(status: 503, detail: "MariaDB: out of memory") }
        handle = h
        var timeout = s.connectTimeout
        mysql_options(h, MYSQL_OPT_CONNECT_TIMEOUT, &timeout)
        var rw: UInt32 = 30
        mysql_options(h, MYSQL_OPT_READ_TIMEOUT, &rw)
        mysql_options(h, MYSQL_OPT_WRITE_TIMEOUT, &rw)
        _ = "utf8mb4".withCString { mysql_options(h, MYSQL_SET_CHARSET_NAME, $0) }
        if s.tls != .off {
            var enforce: my_bool = 1
            mysql_options(h, MYSQL_OPT_SSL_ENFORCE, &enforce)
            if s.tls == .verifyCA {
                var verify: my_bool = 1
                mysql_options(h, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify)
                if let ca = s.caFile { _ = ca.withCString { mysql_options(h, MYSQL_OPT_SSL_CA, $0) } }
            }
        }
        let ok = mysql_real_connect(h, s.host, s.user, s.password, s.database, s.port, s.socket, UInt(CLIENT_FOUND_ROWS))
        if ok == nil {
            let message = String(cString: mysql_error(h))
            // deinit closes the handle.
            throw SCIMError(status: 503, detail: "cannot connect to MariaDB: \(message)")
        }
        let serverInfo = String(cString: mysql_get_server_info(h))
        supportsReturning = serverInfo.contains("MariaDB") && mysql_get_server_version(h) >= 100500
    }

    deinit {
        for s in statements.values { mysql_stmt_close(s) }
        mysql_close(handle)
    }

    /// Connection-level errors mean the server went away: the pool drops this connection.
    static func isConnectionError(_ code: UInt32) -> Bool {
        [2002, 2003, 2006, 2013, 2055, 1927, 4031].contains(code)  // CR_* lost/gone, ER_CONNECTION_KILLED, ER_CLIENT_INTERACTION_TIMEOUT
    }

    func error(_ code: UInt32, _ message: String) -> SCIMError {
        if Self.isConnectionError(code) {
            broken = true
            return SCIMError(status: 503, detail: "MariaDB is unavailable (\(message)); retry later")
        }
        switch code {
        case 1062: return .uniqueness("a unique value is already taken (\(message))")
        case 1142, 1143, 1044, 1045: return SCIMError(status: 403, detail: "MariaDB refused: \(message)")
        case 1406, 1366, 1292, 1264: return .invalidValue("MariaDB rejected a value: \(message)")
        default: return SCIMError(status: 500, detail: "MariaDB error \(code): \(message)")
        }
    }

    private func prepared(_ sql: String) throws(SCIMError) -> UnsafeMutablePointer<MYSQL_STMT> {
        if let s = statements[sql] { return s }
        guard let stmt = mysql_stmt_init(handle) else { throw error(mysql_errno(handle), String(cString: mysql_error(handle))) }
        let rc = sql.withCString { mysql_stmt_prepare(stmt, $0, UInt(strlen($0))) }
        if rc != 0 {
            let e = error(mysql_stmt_errno(stmt), String(cString: mysql_stmt_error(stmt)))
            mysql_stmt_close(stmt)
            throw e
        }
        if statements.count >= Self.statementCacheSize, let evicted = statements.first {
            mysql_stmt_close(evicted.value)
            statements.removeValue(forKey: evicted.key)
        }
        statements[sql] = stmt
        return stmt
    }

    private func forget(_ sql: String) {
        if let stmt = statements.removeValue(forKey: sql) { mysql_stmt_close(stmt) }
    }

    struct Result {
        var rows: [[String?]] = []
        var affectedRows: Int = 0
        var insertID: UInt64 = 0
    }

    /// Runs one prepared statement with bound parameters; every column comes back as text.
    @discardableResult
    func execute(_ sql: String, _ params: [SQLValue] = []) throws(SCIMError) -> Result {
        var rows: [[String?]] = []
        var result = try run(sql, params, buffered: true) { row throws(SCIMError) in rows.append(row) }
        result.rows = rows
        return result
    }

    /// Runs a query and hands each row to `body` as it comes from the server, so that a
    /// large result is never held whole (neither here nor in libmariadb). The connection
    /// runs nothing else until it returns.
    func forEachRow(_ sql: String, _ params: [SQLValue] = [], _ body: ([String?]) throws(SCIMError) -> Void) throws(SCIMError) {
        try run(sql, params, buffered: false, body)
    }

    /// `buffered`: the whole result is read before the first row (the server is free sooner,
    /// and an INSERT … RETURNING reports its errors before any row is handed on).
    @discardableResult
    private func run(_ sql: String, _ params: [SQLValue], buffered: Bool, _ onRow: ([String?]) throws(SCIMError) -> Void) throws(SCIMError) -> Result {
        let stmt = try prepared(sql)
        var result = Result()
        // Parameter buffers live until execute returns.
        var owned: [UnsafeMutableRawPointer] = []
        defer { for p in owned { p.deallocate() } }
        var binds = [MYSQL_BIND](repeating: MYSQL_BIND(), count: params.count)
        var lengths = [UInt](repeating: 0, count: params.count)
        var nulls = [my_bool](repeating: 0, count: params.count)
        let ok: Bool = lengths.withUnsafeMutableBufferPointer { lengthsBuf in
            nulls.withUnsafeMutableBufferPointer { nullsBuf in
                for (i, p) in params.enumerated() {
                    switch p {
                    case .null:
                        binds[i].buffer_type = MYSQL_TYPE_NULL
                        nullsBuf[i] = 1
                    case .int(let v):
                        let buf = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
                        buf.storeBytes(of: v, as: Int64.self)
                        owned.append(buf)
                        binds[i].buffer_type = MYSQL_TYPE_LONGLONG
                        binds[i].buffer = buf
                    case .string(let s):
                        let bytes = Array(s.utf8)
                        let buf = UnsafeMutableRawPointer.allocate(byteCount: max(1, bytes.count), alignment: 1)
                        bytes.withUnsafeBytes { buf.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(buf), byteCount: bytes.count) }
                        owned.append(buf)
                        binds[i].buffer_type = MYSQL_TYPE_STRING
                        binds[i].buffer = buf
                        binds[i].buffer_length = UInt(bytes.count)
                        lengthsBuf[i] = UInt(bytes.count)
                    }
                    binds[i].length = lengthsBuf.baseAddress! + i
                    binds[i].is_null = nullsBuf.baseAddress! + i
                }
                let bound = binds.isEmpty ? 0 : binds.withUnsafeMutableBufferPointer { mysql_stmt_bind_param(stmt, $0.baseAddress) }
                return bound == 0 && mysql_stmt_execute(stmt) == 0
            }
        }
        guard ok else {
            let e = error(mysql_stmt_errno(stmt), String(cString: mysql_stmt_error(stmt)))
            // A statement whose execution failed (an INSERT … RETURNING hitting a duplicate,
            // say) is not reused: libmariadb may still expect its result packets.
            forget(sql)
            throw e
        }
        result.affectedRows = Int(truncatingIfNeeded: mysql_stmt_affected_rows(stmt))
        result.insertID = mysql_stmt_insert_id(stmt)
        let columns = Int(mysql_stmt_field_count(stmt))
        guard columns > 0 else { return result }
        var failed = false
        defer { if failed { forget(sql) } else { mysql_stmt_free_result(stmt) } }
        let initial = 256
        var outBinds = [MYSQL_BIND](repeating: MYSQL_BIND(), count: columns)
        var outLengths = [UInt](repeating: 0, count: columns)
        var outNulls = [my_bool](repeating: 0, count: columns)
        var outErrors = [my_bool](repeating: 0, count: columns)
        let buffers = (0..<columns).map { _ in UnsafeMutableRawPointer.allocate(byteCount: initial, alignment: 1) }
        defer { for b in buffers { b.deallocate() } }
        return try outLengths.withUnsafeMutableBufferPointer { (lens) throws(SCIMError) -> Result in
            try outNulls.withUnsafeMutableBufferPointer { (nls) throws(SCIMError) -> Result in
                try outErrors.withUnsafeMutableBufferPointer { (errs) throws(SCIMError) -> Result in
                    for i in 0..<columns {
                        outBinds[i].buffer_type = MYSQL_TYPE_STRING
                        outBinds[i].buffer = buffers[i]
                        outBinds[i].buffer_length = UInt(initial)
                        outBinds[i].length = lens.baseAddress! + i
                        outBinds[i].is_null = nls.baseAddress! + i
                        outBinds[i].error = errs.baseAddress! + i
                    }
                    let bound = outBinds.withUnsafeMutableBufferPointer { mysql_stmt_bind_result(stmt, $0.baseAddress) }
                    guard bound == 0, !buffered || mysql_stmt_store_result(stmt) == 0 else {
                        // INSERT … RETURNING reports a duplicate here, not from execute.
                        let e = error(mysql_stmt_errno(stmt), String(cString: mysql_stmt_error(stmt)))
                        failed = true
                        throw e
                    }
                    while true {
                        let rc = mysql_stmt_fetch(stmt)
                        if rc == MYSQL_NO_DATA { break }
                        if rc == 1 {
                            let e = error(mysql_stmt_errno(stmt), String(cString: mysql_stmt_error(stmt)))
                            failed = true
                            throw e
                        }
                        var row: [String?] = []
                        row.reserveCapacity(columns)
                        for i in 0..<columns {
                            if nls[i] != 0 { row.append(nil); continue }
                            let length = Int(lens[i])
                            if length <= initial {
                                row.append(String(decoding: UnsafeRawBufferPointer(start: buffers[i], count: length), as: UTF8.self))
                            } else {
                                // Truncated: fetch the whole column into a buffer of its size.
                                let big = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 1)
                                defer { big.deallocate() }
                                var b = MYSQL_BIND()
                                var l: UInt = 0
                                b.buffer_type = MYSQL_TYPE_STRING
                                b.buffer = big
                                b.buffer_length = UInt(length)
                                let text: String = withUnsafeMutablePointer(to: &l) { lp in
                                    b.length = lp
                                    _ = mysql_stmt_fetch_column(stmt, &b, UInt32(i), 0)
                                    return String(decoding: UnsafeRawBufferPointer(start: big, count: length), as: UTF8.self)
                                }
                                row.append(text)
                            }
                        }
                        do throws(SCIMError) {
                            try onRow(row)
                        } catch {
                            failed = true  // rows may be left unread: the statement is closed
                            throw error
                        }
                    }
                    return result
                }
            }
        }
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        guard mysql_autocommit(handle, 0) == 0 else { throw error(mysql_errno(handle), String(cString: mysql_error(handle))) }
        defer { _ = mysql_autocommit(handle, 1) }
        do {
            let value = try body()
            guard mysql_commit(handle) == 0 else { throw error(mysql_errno(handle), String(cString: mysql_error(handle))) }
            return value
        } catch {
            _ = mysql_rollback(handle)
            throw error
        }
    }
}
