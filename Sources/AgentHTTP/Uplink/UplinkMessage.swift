import HTTPTypes
import NIOCore
import SCIMKit

/// One message on an uplink connection, either way (README, "Outbound only: the relay"): a
/// binary WebSocket message holding the length of a JSON header (4 bytes, big-endian), the
/// header, then the body's bytes. Many requests are in flight on one connection at once,
/// each answered by the response with its `id`.
///
/// Headers by `type`:
/// - `hello` (agent → relay, first): `name`, `apps`, `version`. The token went in the
///   upgrade request's `Authorization: Bearer`, so a wrong one is a 401 before any message.
/// - `welcome` (relay → agent): `relay`, `apps` (accepted), `unknown` (announced apps the
///   relay has no configuration for).
/// - `apps` (agent → relay): the apps it serves, when its configuration changed.
/// - `request` (relay → agent): `id`, `method`, `path` (with the query), `headers`,
///   `scheme`, `client` (the client's address), `credential` (which of the app's
///   credentials the relay checked); the body.
/// - `response` (agent → relay): `id`, `status`, `headers`; the body.
/// - `ping`, `pong`: heartbeats, both ways. A connection silent for three heartbeats is dropped.
/// - `draining` (agent → relay): send nothing new here; the agent closes the connection once
///   what is in flight on it is answered (a reconnect or a shutdown loses nothing).
struct UplinkMessage: Sendable {
    var header: JSONObject
    var body: ByteBuffer

    init(_ header: JSONObject, body: ByteBuffer = ByteBuffer()) {
        self.header = header
        self.body = body
    }

    var type: String { header["type"]?.stringValue ?? "" }
    var id: Int? { header["id"]?.intValue }

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    /// Header sizes above this are refused: headers carry names, paths and a few HTTP fields.
    static let maxHeaderSize = 256 << 10

    static func decode(_ buffer: ByteBuffer) throws(Malformed) -> UplinkMessage {
        var buffer = buffer
        guard let length = buffer.readInteger(as: UInt32.self) else { throw Malformed(description: "a message shorter than its length field") }
        guard length <= maxHeaderSize, let bytes = buffer.readBytes(length: Int(length)) else {
            throw Malformed(description: "a header of \(length) bytes in a message of \(buffer.readableBytes + 4)")
        }
        guard let header = (try? JSON.parse(bytes))?.objectValue, header["type"]?.stringValue != nil else {
            throw Malformed(description: "a header that is not a JSON object with a type")
        }
        return UplinkMessage(header, body: buffer)
    }

    func encoded() -> ByteBuffer {
        let bytes = JSON.object(header).serializedBytes()
        var out = ByteBuffer()
        out.reserveCapacity(4 + bytes.count + body.readableBytes)
        out.writeInteger(UInt32(bytes.count))
        out.writeBytes(bytes)
        out.writeImmutableBuffer(body)
        return out
    }

    /// HTTP fields as `[[name, value], …]`, in order, repeated names kept.
    static func fields(_ fields: HTTPFields) -> JSON {
        .array(fields.map { .array([.string($0.name.rawName), .string($0.value)]) })
    }

    static func fields(_ json: JSON?) -> HTTPFields {
        var out = HTTPFields()
        for pair in json?.arrayValue ?? [] {
            guard let p = pair.arrayValue, p.count == 2, let n = p[0].stringValue, let v = p[1].stringValue, let name = HTTPField.Name(n) else { continue }
            out.append(HTTPField(name: name, value: v))
        }
        return out
    }
}
