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

    init(_ s: LDAPSettings) throws(LDAPError) {
        var handle: OpaquePointer?
        let rc = ldap_initialize(&handle, s.url)
        guard rc == LDAP_SUCCESS, let handle else {
            throw LDAPError(code: rc == LDAP_SUCCESS ? LDAP_PARAM_ERROR : rc, message: "invalid LDAP url", operation: .connect(s.url))
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
            guard rc == LDAP_SUCCESS else { throw error(rc, .startTLS) }
        }
        let bound = scim_ldap_bind(ld, s.bindDN, s.bindPassword)
        guard bound == LDAP_SUCCESS else { throw error(bound, .bind(s.bindDN)) }
    }

    deinit { ldap_unbind_ext_s(ld, nil, nil) }

    /// An LDAP result code as an `LDAPError`, with the server's diagnostic message; one that
    /// means the connection is gone marks it broken, so the pool drops it.
    func error(_ rc: Int32, _ operation: LDAPError.Operation) -> LDAPError {
        var message = String(cString: ldap_err2string(rc))
        if let d = scim_ldap_diagnostic(ld) {
            let diagnostic = String(cString: d)
            ldap_memfree(d)
            if !diagnostic.isEmpty { message += " (\(diagnostic))" }
        }
        let error = LDAPError(code: rc, message: message, operation: operation)
        if error.lostConnection { broken = true }
        return error
    }

    static func cStrings(_ values: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let array = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: values.count + 1)
        for (i, v) in values.enumerated() { array[i] = strdup(v) }
        array[values.count] = nil
        return array
    }

    /// All entries matching, fetched page by page with the Simple Paged Results control.
    func search(base: String, scope: Int32, filter: String, attributes: [String], pageSize: Int = 500) throws -> [LDAPEntry] {
        var out: [LDAPEntry] = []
        try forEach(base: base, scope: scope, filter: filter, attributes: attributes, pageSize: pageSize) { out.append($0) }
        return out
    }

    /// Each entry a search finds, as its page of results arrives (simple paged results,
    /// RFC 2696): a large subtree is never held whole. Throws an `LDAPError`, a `SCIMError`
    /// when the directory's size limit cuts the list short, or what `body` throws.
    func forEach(base: String, scope: Int32, filter: String, attributes: [String], pageSize: Int = 500,
                 _ body: (LDAPEntry) throws -> Void) throws {
        var cookie = berval(bv_len: 0, bv_val: nil)
        defer { if cookie.bv_val != nil { ber_memfree(cookie.bv_val) } }
        var seen = 0
        repeat {
            seen += try page(base: base, scope: scope, filter: filter, attributes: attributes, pageSize: pageSize, cookie: &cookie, seen: seen, body)
        } while cookie.bv_len > 0
    }

    /// One page of a paged search, continued from `cookie` (empty for the first), which is
    /// replaced by the next page's (empty after the last); how many entries it held.
    /// `seen`: entries of the search before this page, for the size-limit message.
    func page(base: String, scope: Int32, filter: String, attributes: [String], pageSize: Int, cookie: inout berval, seen: Int = 0,
              _ body: (LDAPEntry) throws -> Void) throws -> Int {
        let attrs = Self.cStrings(attributes)
        defer {
            for i in 0..<attributes.count { free(attrs[i]) }
            attrs.deallocate()
        }
        var res: OpaquePointer?
        let rc = scim_ldap_search_page(ld, base, scope, filter, attrs, Int32(pageSize), &cookie, Int32(timeout), &res)
        defer { if res != nil { ldap_msgfree(res) } }
        if rc == LDAP_NO_SUCH_OBJECT { return 0 }
        if rc == LDAP_SIZELIMIT_EXCEEDED {
            // Paged or not, the directory returns no more to this account: a list cut
            // short would look complete (an import would miss users), so it is an error.
            throw SCIMError(status: 502, detail: "the directory stopped after \(seen + Int(ldap_count_entries(ld, res))) entries under \(base): its size limit for \(bindDN) "
                + "allows no more. Raise it for this account (OpenLDAP: limits dn.exact=\"\(bindDN)\" size.prtotal=unlimited)")
        }
        guard rc == LDAP_SUCCESS else { throw error(rc, .search(base)) }
        var count = 0
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
            count += 1
            try body(item)
            entry = ldap_next_entry(ld, e)
        }
        return count
    }

    /// The controls the server's root DSE lists (`supportedControl`).
    func supportedControls() throws -> Set<String> {
        Set(try search(base: "", scope: LDAP_SCOPE_BASE, filter: "(objectClass=*)", attributes: ["supportedControl"], pageSize: 0).first?.all("supportedControl") ?? [])
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

    func add(_ dn: String, _ attributes: [LDAPChange]) throws(LDAPError) {
        let mods = modifications(attributes)
        defer { freeMods(mods) }
        let rc = ldap_add_ext_s(ld, dn, mods, nil, nil)
        guard rc == LDAP_SUCCESS else { throw error(rc, .add(dn)) }
    }

    /// `assertion`: an RFC 4528 filter the entry must match for the change to be made (a
    /// conditional write: `(entryCSN=…)` is "unchanged since it was read").
    func modify(_ dn: String, _ changes: [LDAPChange], assertion: String? = nil) throws(LDAPError) {
        guard !changes.isEmpty else { return }
        let mods = modifications(changes)
        defer { freeMods(mods) }
        let rc = scim_ldap_modify(ld, dn, mods, assertion)
        guard rc == LDAP_SUCCESS else { throw error(rc, .modify(dn)) }
    }

    func delete(_ dn: String) throws(LDAPError) {
        let rc = ldap_delete_ext_s(ld, dn, nil, nil)
        guard rc == LDAP_SUCCESS else { throw error(rc, .delete(dn)) }
    }

    func rename(_ dn: String, newRDN: String, newSuperior: String?, assertion: String? = nil) throws(LDAPError) {
        let rc = scim_ldap_rename(ld, dn, newRDN, newSuperior, assertion)
        guard rc == LDAP_SUCCESS else { throw error(rc, .rename(dn)) }
    }

    func setPassword(_ dn: String, _ password: String) throws(LDAPError) {
        let rc = scim_ldap_passwd(ld, dn, password)
        guard rc == LDAP_SUCCESS else { throw error(rc, .password(dn)) }
    }
}

/// An LDAP result code with the server's message and what was being done. The connector
/// decides on `code` (a member already there, an assertion that failed); its SCIM meaning is
/// `scimError`, taken where the call returns to the agent (`Export.perform`).
struct LDAPError: Error, SCIMErrorConvertible, CustomStringConvertible {
    enum Operation {
        case connect(String), startTLS, bind(String), search(String), add(String), modify(String), delete(String), rename(String), password(String)

        var text: String {
            switch self {
            case .connect(let url): "connect to \(url)"
            case .startTLS: "StartTLS"
            case .bind(let dn): "bind as \(dn)"
            case .search(let base): "search \(base)"
            case .add(let dn): "add \(dn)"
            case .modify(let dn): "modify \(dn)"
            case .delete(let dn): "delete \(dn)"
            case .rename(let dn): "rename \(dn)"
            case .password(let dn): "password modify for \(dn)"
            }
        }
    }

    /// The LDAP result code (RFC 4511 §4.1.9), or a negative libldap one (the connection).
    var code: Int32
    var message: String
    var operation: Operation

    var description: String { "\(operation.text): \(message)" }

    var lostConnection: Bool {
        code < 0 || [LDAP_SERVER_DOWN, LDAP_CONNECT_ERROR, LDAP_TIMEOUT, LDAP_UNAVAILABLE, LDAP_BUSY, LDAP_TIMELIMIT_EXCEEDED].contains(code)
    }

    var scimError: SCIMError {
        switch (code, operation) {
        case (LDAP_INVALID_CREDENTIALS, .bind(let dn)): return SCIMError(status: 503, detail: "LDAP bind as \(dn) failed: invalid credentials")
        case (_, .connect): return SCIMError(status: 503, detail: description)
        case (LDAP_NO_SUCH_OBJECT, _): return .notFound(description)
        case (LDAP_ASSERTION_FAILED, _): return .changed(description)
        case (LDAP_ALREADY_EXISTS, _): return .uniqueness(description)
        case (LDAP_INSUFFICIENT_ACCESS, _): return SCIMError(status: 403, detail: description)
        case (LDAP_CONSTRAINT_VIOLATION, _), (LDAP_INVALID_SYNTAX, _), (LDAP_OBJECT_CLASS_VIOLATION, _), (LDAP_UNDEFINED_TYPE, _),
             (LDAP_NAMING_VIOLATION, _), (LDAP_NOT_ALLOWED_ON_RDN, _), (LDAP_UNWILLING_TO_PERFORM, _), (LDAP_INVALID_DN_SYNTAX, _),
             (LDAP_TYPE_OR_VALUE_EXISTS, _), (LDAP_NO_SUCH_ATTRIBUTE, _):
            return .invalidValue(description)
        default:
            if lostConnection { return SCIMError(status: 503, detail: "directory unavailable: \(description)") }
            return SCIMError(status: 502, detail: description)
        }
    }
}
