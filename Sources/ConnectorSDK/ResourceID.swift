#if canImport(Glibc)
import Glibc
#endif

/// Ids for the resources a connector creates.
public enum ResourceID {
    /// A time-ordered (version 7, RFC 9562) UUID, lowercase: 48 bits of Unix milliseconds, then
    /// 74 random bits. New keys land at the right edge of a primary key's B-tree, not on a
    /// random page: with random (version 4) keys, once a table outgrows InnoDB's buffer pool,
    /// inserts wait for pages read from disk. One getrandom(2) per id (Foundation's UUID()
    /// opens /dev/urandom on every call).
    public static func new() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let milliseconds = UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
        var g = SystemRandomNumberGenerator()
        let random = (g.next() as UInt64, g.next() as UInt16)
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * UInt64(i))) }
        withUnsafeBytes(of: random.0) { for i in 0..<8 { bytes[8 + i] = $0[i] } }
        withUnsafeBytes(of: random.1) { bytes[6] = $0[0]; bytes[7] = $0[1] }
        bytes[6] = bytes[6] & 0x0F | 0x70
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (i, b) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
