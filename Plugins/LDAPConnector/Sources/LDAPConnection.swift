import CLDAP
import ConnectorSDK
import Foundation

struct LDAPSettings {
    var url: String
    var startTLS: Bool
    var caFile: String?
    var bindDN: String
    var bindPassword: String
    var timeout: Int
}

/// An entry as read: its DN and attribute values (names lowercased).
struct LDAPEntry {
    var dn: String
    var attributes: [String: [String]]
    func first(_ name: String) -> String? { attributes[name.lowercased()]?.first }
    func all(_ name: String) -> [String] { attributes[name.lowercased()] ?? [] }
}

/// A modification for add / modify.
struct LDAPChange {
    enum Op { case add, replace, delete }
    var op: Op
    var attribute: String
    var values: [String]
}

/// One bound libldap connection. Not thread-safe: the pool lends it to one caller at a time.
final class LDAPConnection {
    let ld: OpaquePointer
    private(set) var broken = false
    let timeout: Int
    let bindDN: String

    init(_ s: LDAPSettings) throws(SCIMError) {
        var handle: OpaquePointer?
        guard ldap_initialize(&handle, s.url) == LDAP_SUCCESS, let handle else {
            throw SCIMError(status: 503, detail: "invalid LDAP url \(s.url)")
        }
        ld = handle
        timeout = s.timeout
        bindDN = s.bindDN
        var version = LDAP_VERSION3
        ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version)
        var tv = timeval(tv_sec: s.timeout, tv_usec: 0)
        ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv)
        ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv)
        ldap_set_option(ld, LDAP_OPT_REFERRALS, nil)  // LDAP_OPT_OFF
        if let ca = s.caFile { _ = ca.withCString { ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, $0) } }
        if s.caFile != nil || s.startTLS || s.url.hasPrefix("ldaps") {
            var demand = LDAP_OPT_X_TLS_DEMAND
            ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand)
            var zero: Int32 = 0
            ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero)
        }
        if s.startTLS {
            let rc = ldap_start_tls_s(ld, nil, nil)
            guard rc == LDAP_SUCCESS else { throw error(rc, "StartTLS") }
        }
        let rc = scim_ldap_bind(ld, s.bindDN, s.bindPassword)
        guard rc == LDAP_SUCCESS else {
            if rc == LDAP_INVALID_CREDENTIALS { throw SCIMError(status: 503, detail: "LDAP bind as \(s.bindDN) failed: invalid credentials") }
            throw error(rc, "bind as \(s.bindDN)")
        }
    }

    deinit { ldap_unbind_ext_s(ld, nil, nil) }

    /// The LDAP result code of the last operation that failed on this connection.
    private(set) var lastFailure: Int32 = LDAP_SUCCESS

    /// LDAP result codes as SCIM errors, with the server's diagnostic message.
    func error(_ rc: Int32, _ what: String) -> SCIMError {
        lastFailure = rc
        var diagnostic = ""
        if let d = scim_ldap_diagnostic(ld) {
            diagnostic = String(cString: d)
            ldap_memfree(d)
        }
        let message = "\(what): \(String(cString: ldap_err2string(rc)))" + (diagnostic.isEmpty ? "" : " (\(diagnostic))")
        switch rc {
        case LDAP_NO_SUCH_OBJECT: return .notFound(message)
        case LDAP_ASSERTION_FAILED: return .changed(message)
        case LDAP_ALREADY_EXISTS: return .uniqueness(message)
        case LDAP_INSUFFICIENT_ACCESS: return SCIMError(status: 403, detail: message)
        case LDAP_CONSTRAINT_VIOLATION, LDAP_INVALID_SYNTAX, LDAP_OBJECT_CLASS_VIOLATION, LDAP_UNDEFINED_TYPE, LDAP_NAMING_VIOLATION,
             LDAP_NOT_ALLOWED_ON_RDN, LDAP_UNWILLING_TO_PERFORM, LDAP_INVALID_DN_SYNTAX, LDAP_TYPE_OR_VALUE_EXISTS, LDAP_NO_SUCH_ATTRIBUTE:
            return .invalidValue(message)
        case LDAP_SERVER_DOWN, LDAP_CONNECT_ERROR, LDAP_TIMEOUT, LDAP_UNAVAILABLE, LDAP_BUSY, LDAP_TIMELIMIT_EXCEEDED:
            broken = true
            return SCIMError(status: 503, detail: "directory unavailable: \(message)")
        default:
            if rc < 0 { broken = true }
            return SCIMError(status: rc < 0 ? 503 : 502, detail: message)
        }
    }

    static func cStrings(_ values: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: values.count + 1)
        for (i, v) in values.enumerated() { array[i] = strdup(v) }
        array[values.count] = nil
        return array
    }

    /// All entries matching, fetched page by page with the Simple Paged Results control.
    func search(base: String, scope: Int32, filter: String, attributes: [String], pageSize: Int = 500) throws(SCIMError) -> [LDAPEntry] {
        var out: [LDAPEntry] = []
        try forEach(base: base, scope: scope, filter: filter, attributes: attributes, pageSize: pageSize) { out.append($0) }
        return out
    }

    /// Each entry a search finds, as its page of results arrives (simple paged results,
    /// RFC 2696): a large subtree is never held whole.
    func forEach(base: String, scope: Int32, filter: String, attributes: [String], pageSize: Int = 500,
                 _ body: (LDAPEntry) throws(SCIMError) -> Void) throws(SCIMError) {
        let attrs = Self.cStrings(attributes)
        defer {
            for i in 0..<attributes.count { free(attrs[i]) }
            attrs.deallocate()
        }
        var cookie = berval(bv_len: 0, bv_val: nil)
        defer { if cookie.bv_val != nil { ber_memfree(cookie.bv_val) } }
        var seen = 0
        repeat {
            var res: OpaquePointer?
            let rc = scim_ldap_search_page(ld, base, scope, filter, attrs, Int32(pageSize), &cookie, Int32(timeout), &res)
            defer { if res != nil { ldap_msgfree(res) } }
            if rc == LDAP_NO_SUCH_OBJECT { return }
            if rc == LDAP_SIZELIMIT_EXCEEDED {
                // Paged or not, the directory returns no more to this account: a list cut
                // short would look complete (an import would miss users), so it is an error.
                seen += Int(ldap_count_entries(ld, res))
                throw SCIMError(status: 502, detail: "the directory stopped after \(seen) entries under \(base): its size limit for \(bindDN) "
                    + "allows no more. Raise it for this account (OpenLDAP: limits dn.exact=\"\(bindDN)\" size.prtotal=unlimited)")
            }
            guard rc == LDAP_SUCCESS else { throw error(rc, "search \(base)") }
            seen += Int(ldap_count_entries(ld, res))
            var entry = ldap_first_entry(ld, res)
            while let e = entry {
                var item = LDAPEntry(dn: "", attributes: [:])
                if let dn = ldap_get_dn(ld, e) {
                    item.dn = String(cString: dn)
                    ldap_memfree(dn)
                }
                for name in attributes where name != "+" && name != "*" {
                    guard let values = ldap_get_values_len(ld, e, name) else { continue }
                    var i = 0
                    var list: [String] = []
                    while let v = values[i] {
                        list.append(String(decoding: UnsafeRawBufferPointer(start: v.pointee.bv_val, count: Int(v.pointee.bv_len)), as: UTF8.self))
                        i += 1
                    }
                    ldap_value_free_len(values)
                    item.attributes[name.lowercased()] = list
                }
                try body(item)
                entry = ldap_next_entry(ld, e)
            }
        } while cookie.bv_len > 0
    }

    func modifications(_ changes: [LDAPChange]) -> UnsafeMutablePointer<UnsafeMutablePointer<LDAPMod>?> {
        let mods = UnsafeMutablePointer<UnsafeMutablePointer<LDAPMod>?>.allocate(capacity: changes.count + 1)
        for (i, c) in changes.enumerated() {
            let op: Int32 = c.op == .add ? LDAP_MOD_ADD : c.op == .replace ? LDAP_MOD_REPLACE : LDAP_MOD_DELETE
            mods[i] = scim_ldap_mod(op, c.attribute, c.values.isEmpty ? nil : Self.cStrings(c.values))
        }
        mods[changes.count] = nil
        return mods
    }

    private func freeMods(_ mods: UnsafeMutablePointer<UnsafeMutablePointer<LDAPMod>?>) {
        // scim_ldap_mods_free frees the array with free(), so hand it a malloc'd copy.
        var n = 0
        while mods[n] != nil { n += 1 }
        let copy = malloc((n + 1) * MemoryLayout<UnsafeMutablePointer<LDAPMod>?>.stride)!.assumingMemoryBound(to: UnsafeMutablePointer<LDAPMod>?.self)
        for i in 0...n { copy[i] = mods[i] }
        mods.deallocate()
        scim_ldap_mods_free(copy)
    }

    func add(_ dn: String, _ attributes: [LDAPChange]) throws(SCIMError) {
        let mods = modifications(attributes)
        defer { freeMods(mods) }
        let rc = ldap_add_ext_s(ld, dn, mods, nil, nil)
        guard rc == LDAP_SUCCESS else { throw error(rc, "add \(dn)") }
    }

    /// `assertion`: an RFC 4528 filter the entry must match for the change to be made (a
    /// conditional write: `(entryCSN=…)` is "unchanged since it was read").
    func modify(_ dn: String, _ changes: [LDAPChange], assertion: String? = nil) throws(SCIMError) {
        guard !changes.isEmpty else { return }
        let mods = modifications(changes)
        defer { freeMods(mods) }
        let rc = scim_ldap_modify(ld, dn, mods, assertion)
        guard rc == LDAP_SUCCESS else { throw error(rc, "modify \(dn)") }
    }

    func delete(_ dn: String) throws(SCIMError) {
        let rc = ldap_delete_ext_s(ld, dn, nil, nil)
        guard rc == LDAP_SUCCESS else { throw error(rc, "delete \(dn)") }
    }

    func rename(_ dn: String, newRDN: String, newSuperior: String?, assertion: String? = nil) throws(SCIMError) {
        let rc = scim_ldap_rename(ld, dn, newRDN, newSuperior, assertion)
        guard rc == LDAP_SUCCESS else { throw error(rc, "rename \(dn)") }
    }

    func setPassword(_ dn: String, _ password: String) throws(SCIMError) {
        let rc = scim_ldap_passwd(ld, dn, password)
        guard rc == LDAP_SUCCESS else { throw error(rc, "password modify for \(dn)") }
    }
}
