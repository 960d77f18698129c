import CLDAP
import ConnectorSDK
import Foundation

/// Imports that continue where their last page stopped (README, "ldap"): an IdP reads every
/// user page by page by `startIndex`, and a directory cannot jump to an index, so each page
/// used to search the whole subtree again. A running import instead keeps its own connection
/// and its Simple Paged Results cookie (RFC 2696), and the page that continues it is the next
/// page of that search: one page read per request, and the count of matches taken once, when
/// the import starts. A jump, a sorted or inexact query, or an import unused for
/// `timeout` seconds reads the subtree as before.
final class ImportChains: @unchecked Sendable {
    // @unchecked: the table is behind its lock; a chain is used by one request at a time
    // (taken out of the table while it is).
    struct Key: Hashable {
        var base: String
        var filter: String
        var pageSize: Int
    }

    final class Chain {
        let connection: LDAPConnection
        var cookie = berval(bv_len: 0, bv_val: nil)
        var nextStartIndex = 1
        let total: Int
        var lastUsed = Date()

        init(connection: LDAPConnection, total: Int) {
            self.connection = connection
            self.total = total
        }

        deinit { if cookie.bv_val != nil { ber_memfree(cookie.bv_val) } }
    }

    static let timeout: TimeInterval = 120
    static let capacity = 16

    private let table = Locked([Key: Chain]())
    let connect: () throws -> LDAPConnection

    init(connect: @escaping () throws -> LDAPConnection) {
        self.connect = connect
    }

    /// The page of `key` that starts at `startIndex`, if it continues an import (or starts
    /// one: `startIndex` 1); nil when the caller must read the subtree itself.
    func page(_ key: Key, startIndex: Int, scope: Int32, attributes: [String], _ make: (LDAPEntry) throws -> JSON) throws -> (resources: [JSON], total: Int)? {
        let now = Date()
        let continued = table.withLock { t -> Chain? in
            t = t.filter { now.timeIntervalSince($0.value.lastUsed) < Self.timeout }
            guard let c = t[key], c.nextStartIndex == startIndex else { return nil }
            t[key] = nil
            return c
        }
        let chain: Chain
        if let continued {
            chain = continued
        } else {
            guard startIndex == 1 else { return nil }
            let connection = try connect()
            var total = 0
            try connection.forEach(base: key.base, scope: scope, filter: key.filter, attributes: ["1.1"]) { _ in total += 1 }
            chain = Chain(connection: connection, total: total)
        }
        var resources: [JSON] = []
        do {
            _ = try chain.connection.page(base: key.base, scope: scope, filter: key.filter, attributes: attributes, pageSize: key.pageSize,
                                          cookie: &chain.cookie, seen: startIndex - 1) { resources.append(try make($0)) }
        } catch where continued != nil && chain.connection.broken {
            return nil  // its connection died (a directory restart): the page is read the old way
        }
        chain.nextStartIndex += resources.count
        chain.lastUsed = Date()
        if chain.cookie.bv_len > 0, !resources.isEmpty, !chain.connection.broken {
            table.withLock { t in
                if t.count >= Self.capacity, let oldest = t.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key { t[oldest] = nil }
                t[key] = chain
            }
        }
        return (resources, max(chain.total, startIndex - 1 + resources.count))
    }

    func closeAll() { table.withLock { $0.removeAll() } }
}
