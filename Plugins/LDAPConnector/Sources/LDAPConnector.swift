import CLDAP
import ConnectorSDK
import Foundation

/// Users and groups in an LDAP directory (OpenLDAP and the like), over libldap.
/// SCIM `id` is the entry's entryUUID, so it survives renames.
public final class LDAPConnector: Connector, UserCreating, UserReading, UserReplacing, UserDeleting, UserSearching,
    GroupCreating, GroupReading, GroupReplacing, GroupDeleting, GroupSearching, GroupMembership, @unchecked Sendable
{
    // @unchecked: all fields are immutable after init; the pool synchronises itself.
    public static let name = "ldap"
    public static let version = "1.0.0"
    public static let isConcurrent = true

    /// How `active: false` is represented.
    enum Deactivation {
        /// Move the entry into a container (the default: works on a stock OpenLDAP).
        case move(container: String)
        /// Set an attribute to a value (e.g. `employeeType: disabled`); remove it to reactivate.
        case attribute(name: String, value: String)
    }

    static let placeholderMember = "cn=empty-group-placeholder"
    static let defaultAttributes: [(String, String)] = [
        ("userName", "uid"), ("name.givenName", "givenName"), ("name.familyName", "sn"), ("displayName", "displayName"),
        ("emails.value", "mail"), ("phoneNumbers.value", "telephoneNumber"), ("title", "title"), ("externalId", "employeeNumber"),
    ]

    let pool: ConnectionPool<LDAPConnection>
    let imports: ImportChains
    let usersDN: String
    let groupsDN: String?
    let userClasses: [String]
    let rdnAttribute: String
    let groupClass: String
    let memberAttribute: String
    /// Where a group's externalId is kept (groupOfNames has no attribute of its own for it).
    let groupExternalIdAttribute: String?
    let deactivation: Deactivation
    let mapping: [(path: AttributePath, attribute: String)]
    let host: ConnectorHost

    public init(settings: JSON, host: ConnectorHost) throws {
        self.host = host
        guard let url = settings["url"]?.stringValue, url.hasPrefix("ldap://") || url.hasPrefix("ldaps://") || url.hasPrefix("ldapi://") else {
            throw SCIMError.invalidValue("settings.url must be an ldap:// or ldaps:// URL")
        }
        guard let usersDN = settings["usersDN"]?.stringValue else { throw SCIMError.invalidValue("settings.usersDN is missing") }
        guard let bindDN = settings["bindDN"]?.stringValue else { throw SCIMError.invalidValue("settings.bindDN is missing") }
        self.usersDN = usersDN
        groupsDN = settings["groupsDN"]?.stringValue
        userClasses = settings["userObjectClasses"]?.arrayValue?.compactMap(\.stringValue) ?? ["inetOrgPerson"]
        rdnAttribute = settings["rdnAttribute"]?.stringValue ?? "uid"
        switch settings["groupStyle"]?.stringValue ?? "groupOfNames" {
        case "groupOfNames": (groupClass, memberAttribute) = ("groupOfNames", "member")
        case "groupOfUniqueNames": (groupClass, memberAttribute) = ("groupOfUniqueNames", "uniqueMember")
        default: throw SCIMError.invalidValue("settings.groupStyle must be groupOfNames or groupOfUniqueNames")
        }
        groupExternalIdAttribute = settings["groupExternalIdAttribute"].map { $0.stringValue } ?? "businessCategory"
        switch settings["deactivation"]?["strategy"]?.stringValue ?? "move" {
        case "move": deactivation = .move(container: settings["deactivation"]?["container"]?.stringValue ?? "ou=disabled," + usersDN)
        case "attribute":
            guard let name = settings["deactivation"]?["attribute"]?.stringValue, let value = settings["deactivation"]?["value"]?.stringValue else {
                throw SCIMError.invalidValue("settings.deactivation with strategy attribute needs attribute and value")
            }
            deactivation = .attribute(name: name, value: value)
        default: throw SCIMError.invalidValue("settings.deactivation.strategy must be move or attribute")
        }
        var pairs = Self.defaultAttributes
        if let custom = settings["attributes"]?.objectValue {
            for m in custom {
                guard let attr = m.value.stringValue else { throw SCIMError.invalidValue("settings.attributes.\(m.key) must be an LDAP attribute name") }
                pairs.removeAll { $0.0 == m.key }
                pairs.append((m.key, attr))
            }
        }
        mapping = try pairs.map { (key, attr) throws -> (AttributePath, String) in
            guard let p = AttributePath(parsing: key) else { throw SCIMError.invalidValue("settings.attributes: \(key) is not a SCIM path") }
            return (CoreSchemas.userResource.canonical(p), attr)
        }
        if let userNameAttr = mapping.first(where: { $0.path.name == "userName" })?.attribute, userNameAttr.lowercased() != rdnAttribute.lowercased() {
            throw SCIMError.invalidValue("settings: userName must map to the RDN attribute \(rdnAttribute)")
        }
        let caFile = try settings["caFile"]?.stringValue.map { f throws(SCIMError) in try host.readableFile(f, setting: "settings.caFile") }
        let connection = LDAPSettings(
            url: url, startTLS: settings["startTLS"]?.boolValue ?? false, caFile: caFile, bindDN: bindDN,
            bindPassword: settings["bindPassword"]?.stringValue ?? "", timeout: settings["timeout"]?.intValue ?? 5)
        pool = ConnectionPool(size: settings["poolSize"]?.intValue ?? 4, connect: { try LDAPConnection(connection) }, isBroken: { $0.broken })
        imports = ImportChains(connect: { try LDAPConnection(connection) })
    }

    public func close() {
        imports.closeAll()
        pool.closeAll()
    }

    public func describe() -> JSON {
        let paths: [String] = mapping.map { $0.path.description }
        var users = JSONObject()
        users["attributes"] = .array((paths + ["active", "password"]).map(JSON.string))
        users["sort"] = false
        users["passwordWritable"] = true
        users["activeWritable"] = true
        // Every directory account is either active or disabled: there is no "unset".
        users["required"] = .array([JSON.string("active")])
        users["filterAttributes"] = .array((paths + ["meta.lastModified"]).map(JSON.string))
        users["filterOperators"] = .array(["eq", "ne", "co", "sw", "ew", "pr", "gt", "ge", "lt", "le"].map(JSON.string))  // ordering on meta.lastModified
        var out = JSONObject()
        out["users"] = .object(users)
        let groups: JSON = ["attributes": ["displayName", "members", "externalId"], "sort": false]
        out["groups"] = groupsDN == nil ? .bool(false) : groups
        return .object(out)
    }

    public func test() throws -> String {
        try pool.withConnection { c in
            var problems: [String] = []
            for (name, dn) in [("usersDN", usersDN), ("groupsDN", groupsDN)] {
                guard let dn else { continue }
                if try c.search(base: dn, scope: LDAP_SCOPE_BASE, filter: "(objectClass=*)", attributes: ["objectClass"], pageSize: 0).isEmpty {
                    problems.append("\(name) \(dn) does not exist (or the bind DN cannot see it)")
                }
            }
            if !problems.isEmpty { throw SCIMError(status: 503, detail: problems.joined(separator: "; ")) }
            let count = try c.search(base: usersDN, scope: LDAP_SCOPE_SUBTREE, filter: userFilter, attributes: ["entryUUID"]).count
            // How an import pages: only the paged-results control lets it continue (ImportChains).
            let controls = try c.supportedControls()
            var paging = controls.contains("1.2.840.113556.1.4.319")
                ? "imports continue page by page (simple paged results, RFC 2696)"
                : "the directory offers no paged results: every page of an import reads the whole subtree"
            if controls.contains("2.16.840.1.113730.3.4.9") { paging += "; it offers VLV, not used" }
            return "bound; \(count) users under \(usersDN); \(paging)"
        }
    }

    // MARK: - Entries ↔ resources

    var userFilter: String { "(objectClass=\(LDAPFilter.escape(userClasses.last ?? "inetOrgPerson")))" }
    var userAttributes: [String] {
        var attrs = ["entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp", "cn"] + mapping.map(\.attribute)
        if case .attribute(let name, _) = deactivation { attrs.append(name) }
        return attrs
    }

    /// RFC 4514 escaping of an attribute value inside a DN.
    static func rdnValue(_ v: String) -> String {
        var out = ""
        for (i, ch) in v.enumerated() {
            if ",+\"\\<>;=".contains(ch) || (i == 0 && (ch == "#" || ch == " ")) || (i == v.count - 1 && ch == " ") { out.append("\\") }
            out.append(ch)
        }
        return out
    }

    static func rfc3339(_ generalized: String?) -> JSON? {
        guard let g = generalized, g.count >= 14 else { return nil }
        let d = Array(g)
        func part(_ r: Range<Int>) -> String { String(d[r]) }
        let date = part(0..<4) + "-" + part(4..<6) + "-" + part(6..<8)
        let time = part(8..<10) + ":" + part(10..<12) + ":" + part(12..<14)
        return .string(date + "T" + time + "Z")
    }

    func isDisabled(_ e: LDAPEntry) -> Bool {
        switch deactivation {
        case .move(let container): return e.dn.lowercased().hasSuffix("," + container.lowercased())
        case .attribute(let name, let value): return e.all(name).contains { $0.caseInsensitiveCompare(value) == .orderedSame }
        }
    }

    func user(_ e: LDAPEntry) -> JSON {
        var o: JSONObject = ["schemas": [.string(CoreSchemas.userID)], "id": .string(e.first("entryUUID") ?? "")]
        let uid = e.first(rdnAttribute)
        for (path, attr) in mapping {
            guard let value = e.first(attr) else { continue }
            // sn is mandatory in inetOrgPerson; when no familyName was given it holds the
            // userName, which reads back as no familyName.
            if attr.lowercased() == "sn" && value == uid { continue }
            if let urn = Self.extensionURN(path) {
                // An extension's attribute (the enterprise one's, or Okta's custom ones).
                var ext = o[urn]?.objectValue ?? JSONObject()
                ext[path.name] = .string(value)
                o[urn] = .object(ext)
                if o["schemas"]?.arrayValue?.contains(.string(urn)) != true { o["schemas"] = .array((o["schemas"]?.arrayValue ?? []) + [.string(urn)]) }
                continue
            }
            if let sub = path.subAttribute {
                if CoreSchemas.user.attribute(path.name)?.multiValued == true {
                    // Only what the directory holds: the values (the first is the primary one).
                    o[path.name] = .array(e.all(attr).map { v in JSON.object(["value": .string(v)]) })
                } else {
                    var inner = o[path.name]?.objectValue ?? JSONObject()
                    inner[sub] = .string(value)
                    o[path.name] = .object(inner)
                }
            } else {
                o[path.name] = .string(value)
            }
        }
        o["active"] = .bool(!isDisabled(e))
        var meta = JSONObject()
        if let c = Self.rfc3339(e.first("createTimestamp")) { meta["created"] = c }
        if let m = Self.rfc3339(e.first("modifyTimestamp")) { meta["lastModified"] = m }
        if let csn = e.first("entryCSN") { meta["version"] = .string(csn) }
        o["meta"] = .object(meta)
        return .object(o)
    }

    /// A conditional replace's check and the assertion its first write carries: the entry
    /// read now is still the version the agent computed from, and stays so until the write
    /// (the directory refuses it otherwise). nil when the replace is unconditional.
    func versionAssertion(_ entry: LDAPEntry, _ current: JSON, since expected: JSON?) throws -> String? {
        guard let expected else { return nil }
        guard ResourceVersion.unchanged(current, since: expected), let csn = entry.first("entryCSN") else {
            throw SCIMError.changed("\(entry.dn) changed since it was read")
        }
        return "(entryCSN=\(LDAPFilter.escape(csn)))"
    }

    /// The URN of a mapped path that lies in an extension, nil for a core attribute.
    static func extensionURN(_ path: AttributePath) -> String? {
        guard let urn = path.schema, !urn.caselessEquals(CoreSchemas.userID) else { return nil }
        return urn
    }

    /// The directory attributes for a resource: mapped values, plus cn and sn, which
    /// inetOrgPerson requires.
    func attributes(_ r: JSON) throws -> [(String, [String])] {
        var out: [(String, [String])] = []
        for (path, attr) in mapping {
            var values: [String] = []
            if let urn = Self.extensionURN(path) {
                if let v = r[urn]?[path.name]?.stringValue { values = [v] }
            } else if let sub = path.subAttribute {
                if let list = r[path.name]?.arrayValue {
                    // The primary value first, then a work one, as the first reads back so.
                    func rank(_ v: JSON) -> Int { v["primary"]?.boolValue == true ? 0 : v["type"]?.stringValue?.caselessEquals("work") == true ? 1 : 2 }
                    var seen = Set<String>()
                    values = list.enumerated().sorted { (rank($0.element), $0.offset) < (rank($1.element), $1.offset) }
                        .compactMap { $0.element[sub]?.stringValue }
                        .filter { seen.insert($0.lowercased()).inserted }  // the directory refuses duplicate values
                } else if let v = r[path.name]?[sub]?.stringValue {
                    values = [v]
                }
            } else if let v = r[path.name]?.stringValue {
                values = [v]
            }
            out.append((attr, values.filter { !$0.isEmpty }))
        }
        let userName = r["userName"]?.stringValue ?? ""
        let given = r["name"]?["givenName"]?.stringValue, family = r["name"]?["familyName"]?.stringValue
        let cn = r["displayName"]?.stringValue ?? [given, family].compactMap { $0 }.joined(separator: " ")
        out.removeAll { $0.0.lowercased() == "cn" }
        out.append(("cn", [cn.isEmpty ? userName : cn]))
        if let i = out.firstIndex(where: { $0.0.lowercased() == "sn" }), out[i].1.isEmpty { out[i].1 = [userName] }
        return out
    }

    func findUser(_ c: LDAPConnection, _ id: String) throws -> LDAPEntry {
        let filter = "(&\(userFilter)(entryUUID=\(LDAPFilter.escape(id))))"
        var found = try c.search(base: usersDN, scope: LDAP_SCOPE_SUBTREE, filter: filter, attributes: userAttributes)
        if found.isEmpty, case .move(let container) = deactivation, !container.lowercased().hasSuffix(usersDN.lowercased()) {
            found = try c.search(base: container, scope: LDAP_SCOPE_SUBTREE, filter: filter, attributes: userAttributes)
        }
        guard let e = found.first else { throw SCIMError.notFound("User \(id) not found") }
        return e
    }

    func reread(_ c: LDAPConnection, dn: String) throws -> LDAPEntry {
        guard let e = try c.search(base: dn, scope: LDAP_SCOPE_BASE, filter: "(objectClass=*)", attributes: userAttributes + ["member", "uniqueMember"], pageSize: 0).first else {
            throw SCIMError.notFound("\(dn) not found")
        }
        return e
    }

    func container(active: Bool) -> String {
        if !active, case .move(let container) = deactivation { return container }
        return usersDN
    }

    func ensureContainer(_ c: LDAPConnection, _ dn: String) throws {
        guard dn.lowercased() != usersDN.lowercased() else { return }
        if try c.search(base: dn, scope: LDAP_SCOPE_BASE, filter: "(objectClass=*)", attributes: ["objectClass"], pageSize: 0).isEmpty {
            let ou = dn.split(separator: ",").first.map { String($0.drop { $0 != "=" }.dropFirst()) } ?? "disabled"
            do {
                try c.add(dn, [LDAPChange(op: .add, attribute: "objectClass", values: ["organizationalUnit"]), LDAPChange(op: .add, attribute: "ou", values: [ou])])
            } catch {
                // Created meanwhile by a concurrent deactivation, which is what we wanted.
                guard error.code == LDAP_ALREADY_EXISTS else { throw error }
            }
        }
    }

    // MARK: - Users

    public func createUser(_ resource: JSON) throws -> JSON {
        try pool.withConnection { c in
            guard let userName = resource["userName"]?.stringValue, !userName.isEmpty else { throw SCIMError.invalidValue("userName is required") }
            let active = resource["active"]?.boolValue ?? true
            let parent = container(active: active)
            try ensureContainer(c, parent)
            let dn = "\(rdnAttribute)=\(Self.rdnValue(userName)),\(parent)"
            var changes = [LDAPChange(op: .add, attribute: "objectClass", values: ["top"] + userClasses)]
            for (attr, values) in try attributes(resource) where !values.isEmpty { changes.append(LDAPChange(op: .add, attribute: attr, values: values)) }
            if !active, case .attribute(let name, let value) = deactivation { changes.append(LDAPChange(op: .add, attribute: name, values: [value])) }
            try c.add(dn, changes)
            if let password = resource["password"]?.stringValue { try c.setPassword(dn, password) }
            return user(try reread(c, dn: dn))
        }
    }

    public func getUser(id: String) throws -> JSON {
        try pool.withConnection(idempotent: true) { c in user(try findUser(c, id)) }
    }

    public func replaceUser(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON {
        try pool.withConnection { c in
            // A concurrent rename or move of the same entry (two deactivations at once) makes
            // the DN read here stale, and the rename or modify fails with noSuchObject. The
            // entry is then found again by its entryUUID and the change applied there; a
            // user that is really gone is a 404 from findUser.
            var attempt = 0
            while true {
                do {
                    return try replaceUser(c, id, resource, ifUnchanged: expected)
                } catch let error as LDAPError where error.code == LDAP_NO_SUCH_OBJECT && attempt < 3 {
                    attempt += 1
                    _ = try findUser(c, id)
                    // Moved or renamed since the agent read it: a change, so its PATCH is computed again.
                    if expected != nil { throw SCIMError.changed("User \(id) was moved or renamed since it was read") }
                }
            }
        }
    }

    func replaceUser(_ c: LDAPConnection, _ id: String, _ resource: JSON, ifUnchanged expected: JSON?) throws -> JSON {
        var entry = try findUser(c, id)
        let assertion = try versionAssertion(entry, user(entry), since: expected)
        guard let userName = resource["userName"]?.stringValue, !userName.isEmpty else { throw SCIMError.invalidValue("userName is required") }
        let active = resource["active"]?.boolValue ?? true
        // The attributes first, then a rename or move: each write asserts the entry is as this
        // replace last saw it (read, or as its own first write left it), so a change another
        // writer makes in between is never overwritten; the agent then computes again.
        var changes: [LDAPChange] = []
        for (attr, values) in try attributes(resource) where attr.lowercased() != rdnAttribute.lowercased() {
            let current = entry.all(attr)
            if values == current { continue }
            if values.isEmpty { if !current.isEmpty { changes.append(LDAPChange(op: .delete, attribute: attr, values: [])) } } else {
                changes.append(LDAPChange(op: .replace, attribute: attr, values: values))
            }
        }
        if case .attribute(let name, let value) = deactivation {
            if !active && !isDisabled(entry) { changes.append(LDAPChange(op: .replace, attribute: name, values: [value])) }
            if active && isDisabled(entry) { changes.append(LDAPChange(op: .delete, attribute: name, values: [])) }
        }
        var renameAssertion = assertion
        if !changes.isEmpty {
            try c.modify(entry.dn, changes, assertion: assertion)
            if assertion != nil {
                entry = try reread(c, dn: entry.dn)
                renameAssertion = entry.first("entryCSN").map { "(entryCSN=\(LDAPFilter.escape($0)))" }
            }
        }
        let oldDN = entry.dn
        let newParent = container(active: active)
        var moves = false
        if case .move = deactivation { moves = isDisabled(entry) == active }
        var dn = oldDN
        if entry.first(rdnAttribute) != userName || moves {
            // A rename (modrdn), or a move in or out of the disabled container.
            try ensureContainer(c, newParent)
            try c.rename(oldDN, newRDN: "\(rdnAttribute)=\(Self.rdnValue(userName))", newSuperior: newParent, assertion: renameAssertion)
            dn = "\(rdnAttribute)=\(Self.rdnValue(userName)),\(newParent)"
            try moveMemberships(c, from: oldDN, to: dn)
        }
        if let password = resource["password"]?.stringValue { try c.setPassword(dn, password) }
        return user(try reread(c, dn: dn))
    }

    /// Group memberships follow a renamed or moved entry.
    func moveMemberships(_ c: LDAPConnection, from oldDN: String, to newDN: String) throws {
        guard let groupsDN else { return }
        let groups = try c.search(base: groupsDN, scope: LDAP_SCOPE_SUBTREE, filter: "(\(memberAttribute)=\(LDAPFilter.escape(oldDN)))", attributes: ["cn"])
        for g in groups {
            try c.modify(g.dn, [LDAPChange(op: .add, attribute: memberAttribute, values: [newDN]), LDAPChange(op: .delete, attribute: memberAttribute, values: [oldDN])])
        }
    }

    public func deleteUser(id: String) throws {
        try pool.withConnection { c in
            let entry = try findUser(c, id)
            try c.delete(entry.dn)
            try removeFromGroups(c, entry.dn)
        }
    }

    func removeFromGroups(_ c: LDAPConnection, _ dn: String) throws {
        guard let groupsDN else { return }
        for g in try c.search(base: groupsDN, scope: LDAP_SCOPE_SUBTREE, filter: "(\(memberAttribute)=\(LDAPFilter.escape(dn)))", attributes: ["cn"]) {
            try removeMemberDNs(c, g.dn, [dn])
        }
    }

    public func searchUsers(_ query: Query) throws -> SearchResult {
        try pool.withConnection(idempotent: true) { c in
            let translator = LDAPFilter(
                schema: CoreSchemas.userResource,
                attribute: { p in Self.idAttribute(p) ?? self.mapping.first { $0.path == p || ($0.path.parent == p && $0.path.subAttribute == "value") }?.attribute },
                timestampAttribute: { p in p.name == "meta" && p.subAttribute?.caselessEquals("lastModified") == true ? "modifyTimestamp" : nil })
            let clause = query.filter.flatMap { translator.clause($0) }
            let filter = clause.map { "(&\(userFilter)\($0.text))" } ?? userFilter
            // The directory does not sort: in its order, the connector cuts the page itself.
            var page = SearchPage(query, filtered: query.filter == nil || clause?.exact == true, sorted: query.sortBy == nil,
                                  schema: CoreSchemas.userResource, noun: "users")
            var bases = [usersDN]
            if case .move(let container) = deactivation, !container.lowercased().hasSuffix(usersDN.lowercased()) { bases.append(container) }
            if query.sortBy == nil, query.filter == nil || clause?.exact == true, bases.count == 1, let count = query.count, count > 0,
                let (resources, total) = try imports.page(.init(base: usersDN, filter: filter, pageSize: count), startIndex: query.startIndex,
                                                          scope: LDAP_SCOPE_SUBTREE, attributes: userAttributes, user) {
                return SearchResult(resources: resources, totalResults: total, filtered: true, sorted: true, paged: true)
            }
            for base in bases {
                try c.forEach(base: base, scope: LDAP_SCOPE_SUBTREE, filter: filter, attributes: userAttributes) { entry throws(SCIMError) in
                    try page.offer(user(entry))
                }
            }
            return page.result
        }
    }

    // MARK: - Groups

    func requireGroups() throws -> String {
        guard let groupsDN else { throw SCIMError.notImplemented("settings.groupsDN is not set: this directory app has no groups") }
        return groupsDN
    }

    var groupAttributes: [String] {
        ["entryUUID", "entryCSN", "cn", "createTimestamp", "modifyTimestamp", memberAttribute] + [groupExternalIdAttribute].compactMap { $0 }
    }

    /// The group's entry; `attributes` nil: those a group is read with (its members among
    /// them), else only these (["1.1"]: its DN alone).
    func findGroup(_ c: LDAPConnection, _ id: String, attributes: [String]? = nil) throws -> LDAPEntry {
        let base = try requireGroups()
        guard let e = try c.search(base: base, scope: LDAP_SCOPE_SUBTREE, filter: "(&(objectClass=\(groupClass))(entryUUID=\(LDAPFilter.escape(id))))", attributes: attributes ?? groupAttributes).first else {
            throw SCIMError.notFound("Group \(id) not found")
        }
        return e
    }

    /// The entry's member values. Active Directory returns at most 1,500 values of an
    /// attribute per read (MaxValRange), as `member;range=0-1499`; the rest are read range by
    /// range (`member;range=1500-*`) until one ends in `*`. slapd returns them all at once.
    func memberValues(_ c: LDAPConnection, _ e: LDAPEntry) throws -> [String] {
        let plain = e.all(memberAttribute)
        let prefix = memberAttribute.lowercased() + ";range="
        guard plain.isEmpty, var ranged = e.attributes.first(where: { $0.key.hasPrefix(prefix) }) else { return plain }
        var values = ranged.value
        while let end = Self.rangeEnd(ranged.key.dropFirst(prefix.count)) {
            let attribute = "\(memberAttribute);range=\(end + 1)-*"
            guard let more = try c.search(base: e.dn, scope: LDAP_SCOPE_BASE, filter: "(objectClass=*)", attributes: [attribute], pageSize: 0).first,
                let next = more.attributes.first(where: { $0.key.hasPrefix(prefix) }), !next.value.isEmpty
            else { break }
            values += next.value
            ranged = next
        }
        return values
    }

    /// The last index of a range option's value ("0-1499" → 1499); nil for the last range
    /// ("1500-*") or one that does not parse.
    static func rangeEnd(_ range: Substring) -> Int? {
        guard let dash = range.firstIndex(of: "-") else { return nil }
        return Int(range[range.index(after: dash)...])
    }

    /// `members`: look the members up; false leaves them out.
    func group(_ c: LDAPConnection, _ e: LDAPEntry, members withMembers: Bool = true) throws -> JSON {
        var members: [JSON] = []
        if withMembers {
            let dns = try memberValues(c, e).filter { $0.lowercased() != Self.placeholderMember }
            let ids = try entryUUIDs(c, dns)
            for dn in dns {
                guard let uuid = ids[Self.dnKey(dn)] else { continue }  // gone from the directory
                let isGroup = groupsDN.map { dn.lowercased().hasSuffix($0.lowercased()) } ?? false
                members.append(.object(["value": .string(uuid), "type": .string(isGroup ? "Group" : "User")]))
            }
        }
        var meta = JSONObject()
        if let created = Self.rfc3339(e.first("createTimestamp")) { meta["created"] = created }
        if let modified = Self.rfc3339(e.first("modifyTimestamp")) { meta["lastModified"] = modified }
        if let csn = e.first("entryCSN") { meta["version"] = .string(csn) }
        var o = JSONObject()
        o["schemas"] = .array([.string(CoreSchemas.groupID)])
        o["id"] = .string(e.first("entryUUID") ?? "")
        o["displayName"] = .string(e.first("cn") ?? "")
        if let attr = groupExternalIdAttribute, let v = e.first(attr) { o["externalId"] = .string(v) }
        if withMembers { o["members"] = .array(members) }
        o["meta"] = .object(meta)
        return .object(o)
    }

    /// The entryUUIDs of these entries, by `dnKey`: one search per 100 entries of the same
    /// container (their RDNs OR-ed), not one each; a DN found that way only by another
    /// spelling, or with an RDN too unusual to put in a filter, gets a search of its own.
    func entryUUIDs(_ c: LDAPConnection, _ dns: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        var byContainer: [String: (container: String, rdns: [String])] = [:]
        for dn in dns {
            guard let comma = dn.firstIndex(of: ","), !dn[..<comma].contains(where: { "\\+\"".contains($0) }),
                let equals = dn[..<comma].firstIndex(of: "="),
                // An attribute name or OID, nothing a filter would read otherwise.
                Self.trimmed(dn[..<equals]).utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x5A).contains($0 & 0xDF) || $0 == 0x2D || $0 == 0x2E })
            else { continue }
            let container = String(dn[dn.index(after: comma)...])
            let rdn = "(\(Self.trimmed(dn[..<equals]))=\(LDAPFilter.escape(String(Self.trimmed(dn[dn.index(after: equals)..<comma])))))"
            byContainer[Self.dnKey(container), default: (container, [])].rdns.append(rdn)
        }
        for (container, rdns) in byContainer.values {
            for start in stride(from: 0, to: rdns.count, by: 100) {
                let filter = "(|" + rdns[start..<min(start + 100, rdns.count)].joined() + ")"
                for m in try c.search(base: container, scope: LDAP_SCOPE_ONELEVEL, filter: filter, attributes: ["entryUUID"]) {
                    if let uuid = m.first("entryUUID") { out[Self.dnKey(m.dn)] = uuid }
                }
            }
        }
        for dn in dns where out[Self.dnKey(dn)] == nil {
            if let m = try c.search(base: dn, scope: LDAP_SCOPE_BASE, filter: "(objectClass=*)", attributes: ["entryUUID"], pageSize: 0).first,
                let uuid = m.first("entryUUID")
            {
                out[Self.dnKey(dn)] = uuid
            }
        }
        return out
    }

    /// A DN compared as directories do for the common spellings: ASCII case and the spaces
    /// around `,` and `=` ignored.
    static func dnKey(_ dn: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(dn.utf8.count)
        var spaces = 0
        var afterSeparator = true
        for b in dn.utf8 {
            if b == 0x20 { spaces += 1; continue }
            if b == UInt8(ascii: ",") || b == UInt8(ascii: "=") {
                afterSeparator = true
            } else {
                if !afterSeparator { out.append(contentsOf: repeatElement(0x20, count: spaces)) }
                afterSeparator = false
            }
            spaces = 0
            out.append(b >= 0x41 && b <= 0x5A ? b | 0x20 : b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func trimmed(_ s: Substring) -> Substring {
        var t = s
        while t.first == " " { t.removeFirst() }
        while t.last == " " { t.removeLast() }
        return t
    }

    /// Member ids (entryUUIDs) → DNs; an unknown id is an error.
    func memberDNs(_ c: LDAPConnection, _ ids: [String]) throws -> [String] {
        try ids.map { id in
            let filter = "(entryUUID=\(LDAPFilter.escape(id)))"
            var found = try c.search(base: usersDN, scope: LDAP_SCOPE_SUBTREE, filter: filter, attributes: ["entryUUID"])
            if found.isEmpty, let g = groupsDN { found = try c.search(base: g, scope: LDAP_SCOPE_SUBTREE, filter: filter, attributes: ["entryUUID"]) }
            if found.isEmpty, case .move(let container) = deactivation {
                found = try c.search(base: container, scope: LDAP_SCOPE_SUBTREE, filter: filter, attributes: ["entryUUID"])
            }
            guard let dn = found.first?.dn else { throw SCIMError.invalidValue("member \(id) is neither a user nor a group") }
            return dn
        }
    }

    public func createGroup(_ resource: JSON) throws -> JSON {
        try pool.withConnection { c in
            let base = try requireGroups()
            guard let name = resource["displayName"]?.stringValue, !name.isEmpty else { throw SCIMError.invalidValue("displayName is required") }
            let dns = try memberDNs(c, resource.memberIDs)
            let dn = "cn=\(Self.rdnValue(name)),\(base)"
            var changes = [
                LDAPChange(op: .add, attribute: "objectClass", values: ["top", groupClass]), LDAPChange(op: .add, attribute: "cn", values: [name]),
                LDAPChange(op: .add, attribute: memberAttribute, values: dns.isEmpty ? [Self.placeholderMember] : dns),
            ]
            if let attr = groupExternalIdAttribute, let v = resource["externalId"]?.stringValue { changes.append(LDAPChange(op: .add, attribute: attr, values: [v])) }
            try c.add(dn, changes)
            return try group(c, try c.search(base: dn, scope: LDAP_SCOPE_BASE, filter: "(objectClass=*)", attributes: groupAttributes, pageSize: 0).first!)
        }
    }

    public func getGroup(id: String) throws -> JSON {
        try pool.withConnection(idempotent: true) { c in try group(c, try findGroup(c, id)) }
    }

    public func replaceGroup(id: String, with resource: JSON, ifUnchanged expected: JSON?) throws -> JSON {
        try pool.withConnection { c in
            let base = try requireGroups()
            var entry = try findGroup(c, id)
            var assertion = try versionAssertion(entry, try group(c, entry), since: expected)
            guard let name = resource["displayName"]?.stringValue, !name.isEmpty else { throw SCIMError.invalidValue("displayName is required") }
            if entry.first("cn") != name {
                try c.rename(entry.dn, newRDN: "cn=\(Self.rdnValue(name))", newSuperior: nil, assertion: assertion)
                assertion = nil
                entry.dn = "cn=\(Self.rdnValue(name)),\(base)"
            }
            let dns = try memberDNs(c, resource.memberIDs)
            var changes = [LDAPChange(op: .replace, attribute: memberAttribute, values: dns.isEmpty ? [Self.placeholderMember] : dns)]
            if let attr = groupExternalIdAttribute {
                let v = resource["externalId"]?.stringValue
                if v != entry.first(attr) { changes.append(v.map { LDAPChange(op: .replace, attribute: attr, values: [$0]) } ?? LDAPChange(op: .delete, attribute: attr, values: [])) }
            }
            try c.modify(entry.dn, changes, assertion: assertion)
            return try group(c, try findGroup(c, id))
        }
    }

    public func deleteGroup(id: String) throws {
        try pool.withConnection { c in
            let entry = try findGroup(c, id)
            try c.delete(entry.dn)
            try removeFromGroups(c, entry.dn)
        }
    }

    /// A resource's id is its entry's entryUUID.
    static func idAttribute(_ p: AttributePath) -> String? {
        p.name.caselessEquals("id") && p.subAttribute == nil ? "entryUUID" : nil
    }

    public func searchGroups(_ query: Query) throws -> SearchResult {
        try pool.withConnection(idempotent: true) { c in
            let base = try requireGroups()
            let translator = LDAPFilter(
                schema: CoreSchemas.groupResource,
                attribute: { p in Self.idAttribute(p) ?? (p.name == "displayName" && p.subAttribute == nil ? "cn" : nil) },
                timestampAttribute: { p in p.name == "meta" && p.subAttribute?.caselessEquals("lastModified") == true ? "modifyTimestamp" : nil })
            let clause = query.filter.flatMap { translator.clause($0) }
            let filter = clause.map { "(&(objectClass=\(groupClass))\($0.text))" } ?? "(objectClass=\(groupClass))"
            // A group's members cost a lookup each: only the groups of the page get them, when
            // the directory applied the whole filter.
            var page = SearchPage(query, filtered: query.filter == nil || clause?.exact == true, sorted: query.sortBy == nil,
                                  schema: CoreSchemas.groupResource, noun: "groups")
            // Without members, `member` is not even read (100,000 DNs for a large group).
            let attributes = query.withoutMembers ? groupAttributes.filter { $0 != memberAttribute } : groupAttributes
            for entry in try c.search(base: base, scope: LDAP_SCOPE_SUBTREE, filter: filter, attributes: attributes) {
                try page.offer { try group(c, entry, members: !query.withoutMembers) }
            }
            return page.result
        }
    }

    /// Adds one member at a time, so a 50,000-member group is never rewritten, nor read: the
    /// group's DN is all it needs.
    public func addMembers(groupID: String, memberIDs: [String]) throws {
        try pool.withConnection { c in
            let entry = try findGroup(c, groupID, attributes: ["1.1"])
            let dns = try memberDNs(c, memberIDs)
            // Each add and the placeholder's removal is a value-level change the directory
            // makes atomically; one already made (by a concurrent request, or before) is done.
            for dn in dns {
                try Self.unlessDone(LDAP_TYPE_OR_VALUE_EXISTS) { () throws(LDAPError) in
                    try c.modify(entry.dn, [LDAPChange(op: .add, attribute: memberAttribute, values: [dn])])
                }
            }
            if !dns.isEmpty {
                try Self.unlessDone(LDAP_NO_SUCH_ATTRIBUTE) { () throws(LDAPError) in
                    try c.modify(entry.dn, [LDAPChange(op: .delete, attribute: memberAttribute, values: [Self.placeholderMember])])
                }
            }
        }
    }

    /// Runs a value-level change; failing with `code` means a concurrent request made it first.
    static func unlessDone(_ code: Int32, _ change: () throws(LDAPError) -> Void) throws(LDAPError) {
        do {
            try change()
        } catch let error where error.code != code {
            throw error
        } catch {}
    }

    public func removeMembers(groupID: String, memberIDs: [String]) throws {
        try pool.withConnection { c in
            let entry = try findGroup(c, groupID, attributes: ["1.1"])
            let dns = (try? memberDNs(c, memberIDs)) ?? []
            try removeMemberDNs(c, entry.dn, dns)
        }
    }

    /// groupOfNames needs at least one member: the last one out leaves the placeholder.
    func removeMemberDNs(_ c: LDAPConnection, _ groupDN: String, _ dns: [String]) throws {
        for dn in dns {
            do throws(LDAPError) {
                try c.modify(groupDN, [LDAPChange(op: .delete, attribute: memberAttribute, values: [dn])])
            } catch {
                switch error.code {
                case LDAP_NO_SUCH_ATTRIBUTE:
                    continue  // not a member (any more)
                case LDAP_OBJECT_CLASS_VIOLATION:
                    // The last member: the placeholder goes in by the same modify, so a member
                    // added meanwhile by a concurrent request stays.
                    try Self.unlessDone(LDAP_NO_SUCH_ATTRIBUTE) { () throws(LDAPError) in
                        try c.modify(groupDN, [LDAPChange(op: .add, attribute: memberAttribute, values: [Self.placeholderMember]),
                                               LDAPChange(op: .delete, attribute: memberAttribute, values: [dn])])
                    }
                default:
                    throw error
                }
            }
        }
    }
}
