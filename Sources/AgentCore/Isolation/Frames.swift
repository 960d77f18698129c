import Foundation
import SCIMKit

/// The messages between the agent and a connector child process (`IsolatedConnector`,
/// `ConnectorHost`) over their Unix socket: a 4-byte big-endian length, then an 8-byte call
/// id, a 1-byte kind, and a JSON payload. Many calls are in flight at once; replies come back
/// in any order, matched by id.
enum Frame {
    enum Kind: UInt8 {
        /// Agent → child: `{"op": …, …}` (`ConnectorHost.handle`).
        case request = 1
        /// Child → agent: the call's JSON result; an empty payload is "no result".
        case reply = 2
        /// Child → agent: `{"status", "scimType", "detail"}`.
        case failure = 3
        /// Child → agent, id 0: `{"level": 0…3, "message": …}` from the plugin's `log`.
        case log = 4
    }

    /// Larger frames are refused: the child is then treated as broken.
    static let maxSize = 256 << 20
    static let headerSize = 4 + 8 + 1

    static func encode(id: UInt64, kind: Kind, payload: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(headerSize + payload.count)
        let length = UInt32(8 + 1 + payload.count)
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: id >> UInt64(shift))) }
        out.append(kind.rawValue)
        out += payload
        return out
    }

    /// Writes all of `bytes` to `fd`; false when the other side is gone.
    static func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    /// Reads frames from one socket, buffering what a `read` returns beyond one frame.
    final class Reader: @unchecked Sendable {
        // @unchecked: one thread reads at a time (the handshake, then the child's read loop).
        let fd: Int32
        private var buffer = [UInt8]()
        private var start = 0
        private var chunk = [UInt8](repeating: 0, count: 65536)

        init(fd: Int32) { self.fd = fd }

        enum Next {
            case frame(id: UInt64, kind: Kind, payload: ArraySlice<UInt8>)
            /// Nothing within the timeout given to `next`.
            case idle
            /// The other side closed the socket, or sent what is not a frame.
            case closed(String?)
        }

        /// The next frame; waits at most `timeout` milliseconds (-1: without limit) for data.
        func next(timeout: Int32) -> Next {
            while true {
                if let frame = parsed() { return frame }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, timeout)
                if ready < 0 && errno == EINTR { continue }
                if ready == 0 { return .idle }
                if start > 0 && start == buffer.count {
                    buffer.removeAll(keepingCapacity: true)
                    start = 0
                }
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return .closed(nil) }
                buffer += chunk[0..<n]
            }
        }

        private func parsed() -> Next? {
            let available = buffer.count - start
            guard available >= 4 else { return nil }
            var length = 0
            for i in 0..<4 { length = length << 8 | Int(buffer[start + i]) }
            guard length >= 9, length <= Frame.maxSize else { return .closed("a frame of \(length) bytes") }
            guard available >= 4 + length else { return nil }
            var id: UInt64 = 0
            for i in 4..<12 { id = id << 8 | UInt64(buffer[start + i]) }
            guard let kind = Kind(rawValue: buffer[start + 12]) else { return .closed("a frame of unknown kind \(buffer[start + 12])") }
            let payload = buffer[(start + 13)..<(start + 4 + length)]
            start += 4 + length
            if start == buffer.count {
                let frame = Next.frame(id: id, kind: kind, payload: ArraySlice(payload))
                buffer.removeAll(keepingCapacity: true)
                start = 0
                return frame
            }
            return .frame(id: id, kind: kind, payload: ArraySlice(payload))
        }
    }
}
