import ConnectorSDK

/// SCIM filters as LDAP filters (RFC 4515), values escaped. A leaf without a mapped attribute
/// cannot be pushed; `and` pushes what it can and leaves the rest to the agent.
struct LDAPFilter {
    let schema: ResourceSchema
    let attribute: (AttributePath) -> String?
    let timestampAttribute: (AttributePath) -> String?

    struct Clause { var text: String; var exact: Bool }

    /// RFC 4515 §3: `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`.
    static func escape(_ value: String) -> String {
        return String(decoding: Array(value.utf8).flatMap { b -> [UInt8] in
            switch b {
            case 0x2A: return Array("\\2a".utf8)
            case 0x28: return Array("\\28".utf8)
            case 0x29: return Array("\\29".utf8)
            case 0x5C: return Array("\\5c".utf8)
            case 0x00: return Array("\\00".utf8)
            default: return [b]
            }
        }, as: UTF8.self)
    }

    /// `2011-05-13T04:42:34Z` → `20110513044234Z` (GeneralizedTime, UTC).
    static func generalizedTime(_ text: String) -> String? {
        guard let seconds = DateTime.parse(text) else { return nil }
        let iso = DateTime.format(seconds)
        let digits = iso.prefix(19).filter { $0.isNumber }
        return String(digits) + "Z"
    }

    func clause(_ f: Filter) -> Clause? {
        switch f {
        case .and(let l, let r):
            switch (clause(l), clause(r)) {
            case (let a?, let b?): return Clause(text: "(&\(a.text)\(b.text))", exact: a.exact && b.exact)
            case (let a?, nil): return Clause(text: a.text, exact: false)
            case (nil, let b?): return Clause(text: b.text, exact: false)
            case (nil, nil): return nil
            }
        case .or(let l, let r):
            guard let a = clause(l), let b = clause(r) else { return nil }
            return Clause(text: "(|\(a.text)\(b.text))", exact: a.exact && b.exact)
        case .not(let inner):
            guard let a = clause(inner), a.exact else { return nil }
            return Clause(text: "(!\(a.text))", exact: true)
        case .present(let p):
            guard let attr = attribute(p) else { return nil }
            return Clause(text: "(\(attr)=*)", exact: true)
        case .valuePath:
            return nil
        case .compare(let p, let op, let value):
            if let ts = timestampAttribute(p) {
                guard case .string(let s) = value, let t = Self.generalizedTime(s) else { return nil }
                switch op {
                case .ge: return Clause(text: "(\(ts)>=\(t))", exact: true)
                case .le: return Clause(text: "(\(ts)<=\(t))", exact: true)
                case .gt: return Clause(text: "(&(\(ts)>=\(t))(!(\(ts)=\(t))))", exact: true)
                case .lt: return Clause(text: "(&(\(ts)<=\(t))(!(\(ts)=\(t))))", exact: true)
                case .eq: return Clause(text: "(\(ts)=\(t))", exact: true)
                default: return nil
                }
            }
            guard let attr = attribute(p) else { return nil }
            let v: String
            switch value {
            case .string(let s): v = Self.escape(s)
            case .number(let n): v = Self.escape(JSON.number(n).serialized())
            default: return nil
            }
            // The directory's matching rules decide case, and most ignore it (uid, mail, cn,
            // employeeNumber): for a caseExact SCIM attribute (externalId) its answer is a
            // superset that the agent narrows, and `ne` would drop values differing only in case.
            let exact = !(schema.definition(for: p)?.caseExact ?? false)
            switch op {
            case .eq: return Clause(text: "(\(attr)=\(v))", exact: exact)
            case .ne: return exact ? Clause(text: "(!(\(attr)=\(v)))", exact: true) : nil
            case .co: return Clause(text: "(\(attr)=*\(v)*)", exact: exact)
            case .sw: return Clause(text: "(\(attr)=\(v)*)", exact: exact)
            case .ew: return Clause(text: "(\(attr)=*\(v))", exact: exact)
            case .gt, .ge, .lt, .le:
                // Most directory attributes have no ordering rule, and then (uid>=x) matches
                // nothing at all: ordering is left to the agent.
                return nil
            }
        }
    }
}
