import Foundation

/// An IPv4 or IPv6 address, or a CIDR range of them (`10.0.0.0/8`, `fd00::/8`): the relay's
/// `trustedProxies`. Addresses are compared as bytes, so `::ffff:10.1.2.3` is not `10.1.2.3`.
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    let network: [UInt8]
    let prefix: Int

    /// nil when `text` is neither an address nor `address/prefix` with a prefix that fits it.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.bytes(String(parts[0])) else { return nil }
        var prefix = bytes.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), p >= 0, p <= bytes.count * 8 else { return nil }
            prefix = p
        }
        self.prefix = prefix
        network = Self.masked(bytes, prefix)
    }

    public func contains(_ address: String) -> Bool {
        guard let bytes = Self.bytes(address), bytes.count == network.count else { return false }
        return Self.masked(bytes, prefix) == network
    }

    public var description: String {
        let family = network.count == 4 ? AF_INET : AF_INET6
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = network.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(cString: text) + "/\(prefix)"
    }

    /// The 4 or 16 bytes of an address in text, or nil.
    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// `[2001:db8::1]:443` and `192.0.2.1:443` (some proxies add the port) without the port.
    static func withoutPort(_ hop: String) -> String {
        if hop.hasPrefix("["), let end = hop.firstIndex(of: "]") { return String(hop[hop.index(after: hop.startIndex)..<end]) }
        if hop.filter({ $0 == ":" }).count == 1, let colon = hop.firstIndex(of: ":") { return String(hop[..<colon]) }
        return hop
    }

    static func masked(_ bytes: [UInt8], _ prefix: Int) -> [UInt8] {
        bytes.enumerated().map { i, b in
            let bits = max(0, min(8, prefix - i * 8))
            return bits == 8 ? b : b & UInt8(truncatingIfNeeded: 0xff00 >> bits)
        }
    }
}

extension [AddressRange] {
    /// The client a request came from: the peer, unless the peer is a trusted proxy; then the
    /// `X-Forwarded-For` entries are read from the right, and the first that is not a trusted
    /// proxy is the client (entries further left were written by the client and prove nothing).
    public func client(peer: String, forwardedFor: [String]) -> String {
        guard contains(where: { $0.contains(peer) }) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { AddressRange.withoutPort($0.trimmingCharacters(in: .whitespaces)) }
        for hop in hops.reversed() {
            guard AddressRange.bytes(hop) != nil else { return peer }  // not an address: the header is not to be trusted
            if !contains(where: { $0.contains(hop) }) { return hop }
        }
        return hops.first ?? peer
    }
}
