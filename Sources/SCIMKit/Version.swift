/// `meta.version` as a weak ETag derived from the resource's content (RFC 7644 §3.14).
public enum ResourceVersion {
    /// FNV-1a over the canonical serialization, without `meta` (which holds the version itself).
    /// When the connector keeps a version of its own (`meta.version`, which the ABI says
    /// changes with every write, member changes included), the hash covers that version and
    /// the resource without its `members`: a group read without its members then has the
    /// ETag it has when read whole.
    public static func etag(of resource: JSON) -> String {
        let connectorVersion = resource["meta"]?["version"]?.stringValue
        // The serialization of the resource without `meta`, written directly (no copy of the
        // resource to remove it from).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(512)
        if let connectorVersion { JSON.writeString(connectorVersion, to: &bytes) }
        if case .object(let o) = resource {
            bytes.append(UInt8(ascii: "{"))
            var first = true
            for m in o.members where !m.key.caselessEquals("meta") && !(connectorVersion != nil && m.key.caselessEquals("members")) {
                if !first { bytes.append(UInt8(ascii: ",")) }
                first = false
                JSON.writeString(m.key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                m.value.write(to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        } else {
            resource.write(to: &bytes)
        }
        return "W/\"" + FNV1a.hex(bytes.withUnsafeBytes { FNV1a.hash($0) }) + "\""
    }

    /// The ETag of a group read without its members: nil when the connector keeps no version
    /// and the members are not there, since no honest ETag exists then.
    public static func etag(ofReadWithoutMembers resource: JSON) -> String? {
        resource["meta"]?["version"] == nil && resource["members"] == nil ? nil : etag(of: resource)
    }

    /// Whether `current` is still the version `expected` was read at (a conditional replace's
    /// check): by `meta.version` when the connector keeps one, else by the whole resource.
    public static func unchanged(_ current: JSON, since expected: JSON) -> Bool {
        if let a = expected["meta"]?["version"], let b = current["meta"]?["version"] { return a == b }
        return current == expected
    }

    /// If-Match: true when the request may proceed. `*` matches any existing resource.
    public static func ifMatch(_ header: String, current: String) -> Bool {
        tags(header).contains { $0 == "*" || weakEquals($0, current) }
    }

    /// If-None-Match: true when the resource did not change (a GET may answer 304).
    public static func ifNoneMatch(_ header: String, current: String) -> Bool {
        tags(header).contains { $0 == "*" || weakEquals($0, current) }
    }

    static func tags(_ header: String) -> [String] {
        header.split(separator: ",").map { String($0.trimmingCharacters(in: " ")) }
    }

    static func weakEquals(_ a: String, _ b: String) -> Bool {
        func opaque(_ s: String) -> Substring { s.hasPrefix("W/") ? s.dropFirst(2) : Substring(s) }
        return opaque(a) == opaque(b)
    }
}

/// The 64-bit FNV-1a hash: ETags of resources, content hashes of plugin files.
public enum FNV1a {
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { hash = (hash ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    /// Sixteen lowercase hex digits.
    public static func hex(_ hash: UInt64) -> String {
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
