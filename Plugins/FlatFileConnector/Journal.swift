#if canImport(Glibc)
import Glibc
#endif
import ConnectorSDK

/// One table's files: `NAME.csv` (the spreadsheet) and `NAME.journal` (changes since the last
/// compaction, one JSON line each). A write is acknowledged once its journal line is on disk;
/// compaction folds the journal into the CSV (temporary file, fsync, rename, fsync of the
/// directory), so a crash at any moment leaves the old CSV or the new one, never a torn one.
final class TableFiles {
    let directory: String
    let csvPath: String
    let journalPath: String
    let columns: [String]
    let journalFD: Int32
    /// Identity of the CSV we last read or wrote: a change means an admin edited it.
    private var csvIdentity: FileIdentity?
    /// Bytes of the journal already applied to memory.
    private(set) var journalOffset: Int = 0
    private(set) var journalEntries = 0

    struct FileIdentity: Equatable { var device: UInt64; var inode: UInt64; var size: Int; var mtime: Int; var mtimeNanos: Int }

    init(directory: String, name: String, columns: [String]) throws(SCIMError) {
        self.directory = directory
        self.csvPath = directory + "/" + name + ".csv"
        self.journalPath = directory + "/" + name + ".journal"
        self.columns = columns
        let fd = Glibc.open(journalPath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Self.ioError("cannot open", journalPath) }
        FlatFileConnector.adoptOwner(fd: fd, of: directory)
        journalFD = fd
        if access(csvPath, F_OK) != 0 {
            try writeCSV(rows: [])
        }
    }

    deinit { Glibc.close(journalFD) }

    static func ioError(_ what: String, _ path: String) -> SCIMError {
        SCIMError(status: 503, detail: "\(what) \(path): \(String(cString: strerror(errno)))")
    }

    static func identity(_ path: String) -> FileIdentity? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int(st.st_size), mtime: st.st_mtim.tv_sec, mtimeNanos: st.st_mtim.tv_nsec)
    }

    enum Change { case none, csv, journalTail }

    /// What changed on disk since we last looked.
    func detectChange() -> Change {
        if Self.identity(csvPath) != csvIdentity { return .csv }
        var st = stat()
        fstat(journalFD, &st)
        if Int(st.st_size) < journalOffset { return .csv }  // another writer compacted
        return Int(st.st_size) > journalOffset ? .journalTail : .none
    }

    /// Reads the CSV: its rows keyed by header names.
    func readCSV() throws(SCIMError) -> (rows: [[String]], columns: [String: Int]) {
        let identity = Self.identity(csvPath)
        let bytes = try readAll(csvPath)
        let table: [[String]]
        do { table = try CSV.decode(bytes) } catch {
            throw SCIMError(status: 503, detail: "\(csvPath) line \(error.line): \(error.message); fix the file, writes are refused until then")
        }
        csvIdentity = identity
        journalOffset = 0
        journalEntries = 0
        guard let header = table.first else { return ([], [:]) }
        var columns: [String: Int] = [:]
        for (i, name) in header.enumerated() { columns[name.trimmingSpaces] = i }
        guard columns["id"] != nil else { throw SCIMError(status: 503, detail: "\(csvPath) has no id column in its header row") }
        return (Array(table.dropFirst()), columns)
    }

    /// Journal lines after what was applied; a torn last line (a crash mid-append) is cut off.
    /// Call it holding the file lock (`withFileLock`).
    func readJournalTail() throws(SCIMError) -> [JSON] {
        var st = stat()
        fstat(journalFD, &st)
        let size = Int(st.st_size)
        guard size > journalOffset else { return [] }
        var buffer = [UInt8](repeating: 0, count: size - journalOffset)
        let n = buffer.withUnsafeMutableBytes { pread(journalFD, $0.baseAddress, $0.count, off_t(journalOffset)) }
        guard n == buffer.count else { throw Self.ioError("cannot read", journalPath) }
        var entries: [JSON] = []
        var start = 0
        for i in 0..<buffer.count where buffer[i] == 0x0A {
            if let entry = try? JSON.parse(buffer[start..<i]) { entries.append(entry) }
            start = i + 1
        }
        if start < buffer.count {
            // A line without its newline was cut by a crash and was never acknowledged.
            _ = ftruncate(journalFD, off_t(journalOffset + start))
        }
        journalOffset += start
        journalEntries += entries.count
        return entries
    }

    /// Appends one entry; returns once it is written (not yet synced).
    func append(_ entry: JSON) throws(SCIMError) {
        var line = entry.serialized()
        line += "\n"
        let written = line.withUTF8 { write(journalFD, $0.baseAddress, $0.count) }
        guard written == line.utf8.count else { throw Self.ioError("cannot append to", journalPath) }
        journalOffset += written
        journalEntries += 1
    }

    func sync() throws(SCIMError) {
        guard fdatasync(journalFD) == 0 else { throw Self.ioError("cannot sync", journalPath) }
    }

    /// Folds the journal into the CSV: the new CSV is complete on disk before it replaces the
    /// old one, and the journal is emptied only after that.
    func compact(rows: [[String]]) throws(SCIMError) {
        try writeCSV(rows: rows)
        guard ftruncate(journalFD, 0) == 0, fsync(journalFD) == 0 else { throw Self.ioError("cannot truncate", journalPath) }
        journalOffset = 0
        journalEntries = 0
    }

    private func writeCSV(rows: [[String]]) throws(SCIMError) {
        let temp = csvPath + ".tmp-\(getpid())"
        var text = CSV.encode([columns] + rows)
        let fd = Glibc.open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Self.ioError("cannot create", temp) }
        FlatFileConnector.adoptOwner(fd: fd, of: directory)
        let ok = text.withUTF8 { buf -> Bool in
            var done = 0
            while done < buf.count {
                let n = write(fd, buf.baseAddress! + done, buf.count - done)
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        guard ok, fsync(fd) == 0 else { Glibc.close(fd); unlink(temp); throw Self.ioError("cannot write", temp) }
        Glibc.close(fd)
        guard rename(temp, csvPath) == 0 else { unlink(temp); throw Self.ioError("cannot rename over", csvPath) }
        let dfd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); Glibc.close(dfd) }
        csvIdentity = Self.identity(csvPath)
    }

    /// Holds the directory's lock (on this table's journal) while `body` runs: exclusive to
    /// append or compact, shared to catch up with the files. Another instance on the same
    /// directory (the previous plugin generation, still draining) appends only under the
    /// exclusive lock, so whoever holds either lock never sees half of a line being appended,
    /// and a line without its newline is a crash's leftover.
    func withFileLock<T>(shared: Bool = false, _ body: () throws(SCIMError) -> T) throws(SCIMError) -> T {
        while flock(journalFD, shared ? LOCK_SH : LOCK_EX) != 0 && errno == EINTR {}
        defer { flock(journalFD, LOCK_UN) }
        return try body()
    }

    private func readAll(_ path: String) throws(SCIMError) -> [UInt8] {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.ioError("cannot open", path) }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { throw Self.ioError("cannot read", path) }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
