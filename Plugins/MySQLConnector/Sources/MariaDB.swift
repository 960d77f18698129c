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

    init(_ s: ConnectionSettings) throws(MariaDBError) {
        guard let h = mysql_init(nil) else { throw MariaDBError(code: 2008, message: "out of memory", operation: .connect) }
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
            // deinit closes the handle.
            throw MariaDBError(code: mysql_errno(h), message: String(cString: mysql_error(h)), operation: .connect)
        }
        let serverInfo = String(cString: mysql_get_server_info(h))
        supportsReturning = serverInfo.contains("MariaDB") && mysql_get_server_version(h) >= 100500
    }

    deinit {
        for s in statements.values { mysql_stmt_close(s) }
        mysql_close(handle)
    }

    /// The connection's last error, as a `MariaDBError`; one that means the server went away
    /// marks the connection broken, so the pool drops it.
    private func failure(_ operation: MariaDBError.Operation) -> MariaDBError {
        note(MariaDBError(code: mysql_errno(handle), message: String(cString: mysql_error(handle)), operation: operation))
    }

    /// A statement's last error, as a `MariaDBError`.
    private func failure(_ stmt: UnsafeMutablePointer<MYSQL_STMT>, _ operation: MariaDBError.Operation) -> MariaDBError {
        note(MariaDBError(code: mysql_stmt_errno(stmt), message: String(cString: mysql_stmt_error(stmt)), operation: operation))
    }

    private func note(_ error: MariaDBError) -> MariaDBError {
        if error.lostConnection { broken = true }
        return error
    }

    private func prepared(_ sql: String) throws(MariaDBError) -> UnsafeMutablePointer<MYSQL_STMT> {
        if let s = statements[sql] { return s }
        guard let stmt = mysql_stmt_init(handle) else { throw failure(.prepare) }
        let rc = sql.withCString { mysql_stmt_prepare(stmt, $0, UInt(strlen($0))) }
        if rc != 0 {
            let e = failure(stmt, .prepare)
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
    func execute(_ sql: String, _ params: [SQLValue] = []) throws(MariaDBError) -> Result {
        var rows: [[String?]] = []
        var result = try run(sql, params, buffered: true) { rows.append($0); return true }
        result.rows = rows
        return result
    }

    /// Runs a query and hands each row to `body` as it comes from the server, so that a
    /// large result is never held whole (neither here nor in libmariadb). The connection
    /// runs nothing else until it returns. Throws a `MariaDBError` or what `body` throws.
    func forEachRow(_ sql: String, _ params: [SQLValue] = [], _ body: ([String?]) throws -> Void) throws {
        var stoppedBy: (any Error)?
        try run(sql, params, buffered: false) { row in
            do { try body(row) } catch { stoppedBy = error }
            return stoppedBy == nil
        }
        if let stoppedBy { throw stoppedBy }
    }

    /// bind → execute → fetch, each row to `onRow` until it returns false. `buffered`: the
    /// whole result is read before the first row (the server is free sooner, and an INSERT …
    /// RETURNING reports its errors before any row is handed on).
    @discardableResult
    private func run(_ sql: String, _ params: [SQLValue], buffered: Bool, _ onRow: ([String?]) -> Bool) throws(MariaDBError) -> Result {
        let stmt = try prepared(sql)
        let parameters = ParameterBindings(params)
        guard parameters.bind(to: stmt), mysql_stmt_execute(stmt) == 0 else {
            let e = failure(stmt, .execute)
            // A statement whose execution failed (an INSERT … RETURNING hitting a duplicate,
            // say) is not reused: libmariadb may still expect its result packets.
            forget(sql)
            throw e
        }
        let result = Result(affectedRows: Int(truncatingIfNeeded: mysql_stmt_affected_rows(stmt)), insertID: mysql_stmt_insert_id(stmt))
        let columns = Int(mysql_stmt_field_count(stmt))
        guard columns > 0 else { return result }
        var failed = false
        defer { if failed { forget(sql) } else { mysql_stmt_free_result(stmt) } }
        let row = ResultBindings(columns: columns)
        guard row.bind(to: stmt), !buffered || mysql_stmt_store_result(stmt) == 0 else {
            failed = true  // INSERT … RETURNING reports a duplicate here, not from execute.
            throw failure(stmt, .fetch)
        }
        while true {
            let rc = mysql_stmt_fetch(stmt)
            if rc == MYSQL_NO_DATA { break }
            if rc == 1 {
                failed = true
                throw failure(stmt, .fetch)
            }
            guard onRow(row.values(of: stmt)) else {
                failed = true  // rows may be left unread: the statement is closed
                break
            }
        }
        return result
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        guard mysql_autocommit(handle, 0) == 0 else { throw failure(.transaction) }
        defer { _ = mysql_autocommit(handle, 1) }
        do {
            let value = try body()
            guard mysql_commit(handle) == 0 else { throw failure(.transaction) }
            return value
        } catch {
            _ = mysql_rollback(handle)
            throw error
        }
    }
}

/// An error MariaDB (or libmariadb) reported, with what the connector was doing; its SCIM
/// meaning is `scimError`, taken where the call returns to the agent (`Export.perform`).
struct MariaDBError: Error, SCIMErrorConvertible, CustomStringConvertible {
    enum Operation: String { case connect, prepare, execute, fetch, transaction }
    /// The server's error number (ER_*) or the client library's (CR_*, 2000 and up).
    var code: UInt32
    var message: String
    var operation: Operation

    var description: String { "MariaDB error \(code) in \(operation.rawValue): \(message)" }

    /// The server went away: the connection is of no further use.
    var lostConnection: Bool {
        [2002, 2003, 2006, 2013, 2055, 1927, 4031].contains(code)  // CR_* lost/gone, ER_CONNECTION_KILLED, ER_CLIENT_INTERACTION_TIMEOUT
    }

    var isDuplicate: Bool { code == 1062 }

    var scimError: SCIMError {
        if operation == .connect { return SCIMError(status: 503, detail: "cannot connect to MariaDB: \(message)") }
        if lostConnection { return SCIMError(status: 503, detail: "MariaDB is unavailable (\(message)); retry later") }
        switch code {
        case 1062: return .uniqueness("a unique value is already taken (\(message))")
        case 1142, 1143, 1044, 1045: return SCIMError(status: 403, detail: "MariaDB refused: \(message)")
        case 1406, 1366, 1292, 1264: return .invalidValue("MariaDB rejected a value: \(message)")
        default: return SCIMError(status: 500, detail: "MariaDB error \(code): \(message)")
        }
    }
}

/// The `?` parameters of one execution: MYSQL_BIND entries and the buffers, lengths and
/// null flags they point at, owned together and freed together.
final class ParameterBindings {
    private let count: Int
    private let binds: UnsafeMutablePointer<MYSQL_BIND>
    private let lengths: UnsafeMutablePointer<UInt>
    private let nulls: UnsafeMutablePointer<my_bool>
    private var buffers: [UnsafeMutableRawPointer] = []

    init(_ params: [SQLValue]) {
        count = params.count
        binds = .allocate(capacity: max(1, count))
        binds.initialize(repeating: MYSQL_BIND(), count: max(1, count))
        lengths = .allocate(capacity: max(1, count))
        lengths.initialize(repeating: 0, count: max(1, count))
        nulls = .allocate(capacity: max(1, count))
        nulls.initialize(repeating: 0, count: max(1, count))
        for (i, p) in params.enumerated() {
            switch p {
            case .null:
                binds[i].buffer_type = MYSQL_TYPE_NULL
                nulls[i] = 1
            case .int(let v):
                let buffer = own(byteCount: 8, alignment: 8)
                buffer.storeBytes(of: v, as: Int64.self)
                binds[i].buffer_type = MYSQL_TYPE_LONGLONG
                binds[i].buffer = buffer
            case .string(let s):
                let bytes = Array(s.utf8)
                let buffer = own(byteCount: max(1, bytes.count), alignment: 1)
                bytes.withUnsafeBytes { if let base = $0.baseAddress { buffer.copyMemory(from: base, byteCount: bytes.count) } }
                binds[i].buffer_type = MYSQL_TYPE_STRING
                binds[i].buffer = buffer
                binds[i].buffer_length = UInt(bytes.count)
                lengths[i] = UInt(bytes.count)
            }
            binds[i].length = lengths + i
            binds[i].is_null = nulls + i
        }
    }

    private func own(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: alignment)
        buffers.append(buffer)
        return buffer
    }

    /// mysql_stmt_bind_param; the bindings must outlive the execution.
    func bind(to stmt: UnsafeMutablePointer<MYSQL_STMT>) -> Bool {
        count == 0 || mysql_stmt_bind_param(stmt, binds) == 0
    }

    deinit {
        for b in buffers { b.deallocate() }
        binds.deallocate()
        lengths.deallocate()
        nulls.deallocate()
    }
}

/// Where each fetched row lands: one text buffer per column (`initial` bytes; a longer
/// value is fetched again at its full size), with its length and null flag.
final class ResultBindings {
    static let initial = 256
    private let columns: Int
    private let binds: UnsafeMutablePointer<MYSQL_BIND>
    private let lengths: UnsafeMutablePointer<UInt>
    private let nulls: UnsafeMutablePointer<my_bool>
    private let errors: UnsafeMutablePointer<my_bool>
    private let buffers: UnsafeMutableRawPointer

    init(columns: Int) {
        self.columns = columns
        binds = .allocate(capacity: columns)
        binds.initialize(repeating: MYSQL_BIND(), count: columns)
        lengths = .allocate(capacity: columns)
        lengths.initialize(repeating: 0, count: columns)
        nulls = .allocate(capacity: columns)
        nulls.initialize(repeating: 0, count: columns)
        errors = .allocate(capacity: columns)
        errors.initialize(repeating: 0, count: columns)
        buffers = .allocate(byteCount: columns * Self.initial, alignment: 1)
        for i in 0..<columns {
            binds[i].buffer_type = MYSQL_TYPE_STRING
            binds[i].buffer = buffers + i * Self.initial
            binds[i].buffer_length = UInt(Self.initial)
            binds[i].length = lengths + i
            binds[i].is_null = nulls + i
            binds[i].error = errors + i
        }
    }

    func bind(to stmt: UnsafeMutablePointer<MYSQL_STMT>) -> Bool { mysql_stmt_bind_result(stmt, binds) == 0 }

    /// The row just fetched, each column as text (nil for NULL).
    func values(of stmt: UnsafeMutablePointer<MYSQL_STMT>) -> [String?] {
        var row: [String?] = []
        row.reserveCapacity(columns)
        for i in 0..<columns {
            if nulls[i] != 0 { row.append(nil); continue }
            let length = Int(lengths[i])
            if length <= Self.initial {
                row.append(String(decoding: UnsafeRawBufferPointer(start: buffers + i * Self.initial, count: length), as: UTF8.self))
                continue
            }
            // Truncated: fetch the whole column into a buffer of its size.
            let big = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 1)
            defer { big.deallocate() }
            var fetched: UInt = 0
            var b = MYSQL_BIND()
            b.buffer_type = MYSQL_TYPE_STRING
            b.buffer = big
            b.buffer_length = UInt(length)
            withUnsafeMutablePointer(to: &fetched) { b.length = $0; _ = mysql_stmt_fetch_column(stmt, &b, UInt32(i), 0) }
            row.append(String(decoding: UnsafeRawBufferPointer(start: big, count: length), as: UTF8.self))
        }
        return row
    }

    deinit {
        binds.deallocate()
        lengths.deallocate()
        nulls.deallocate()
        errors.deallocate()
        buffers.deallocate()
    }
}
