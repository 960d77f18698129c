/// The schemas of RFC 7643 §4 and §8.7.1.
public enum CoreSchemas {
    public static let userID = "urn:ietf:params:scim:schemas:core:2.0:User"
    public static let groupID = "urn:ietf:params:scim:schemas:core:2.0:Group"
    public static let enterpriseUserID = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

    private typealias A = AttributeDefinition

    private static func multi(_ name: String, types: [String], value: A = A("value"), description: String = "") -> A {
        A(name, .complex, multiValued: true, description: description,
          subAttributes: [
            value, A("display"), A("type", canonicalValues: types), A("primary", .boolean),
          ])
    }

    public static let user = Schema(
        id: userID, name: "User", description: "User Account",
        attributes: [
            A("userName", required: true, uniqueness: .server),
            A("name", .complex,
              subAttributes: [
                A("formatted"), A("familyName"), A("givenName"), A("middleName"), A("honorificPrefix"),
                A("honorificSuffix"),
              ]),
            A("displayName"), A("nickName"),
            A("profileUrl", .reference, referenceTypes: ["external"]),
            A("title"), A("userType"), A("preferredLanguage"), A("locale"), A("timezone"),
            A("active", .boolean),
            A("password", mutability: .writeOnly, returned: .never),
            multi("emails", types: ["work", "home", "other"]),
            multi("phoneNumbers", types: ["work", "home", "mobile", "fax", "pager", "other"]),
            multi("ims", types: ["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
            multi("photos", types: ["photo", "thumbnail"], value: A("value", .reference, referenceTypes: ["external"])),
            A("addresses", .complex, multiValued: true,
              subAttributes: [
                A("formatted"), A("streetAddress"), A("locality"), A("region"), A("postalCode"), A("country"),
                A("type", canonicalValues: ["work", "home", "other"]), A("primary", .boolean),
              ]),
            A("groups", .complex, multiValued: true, mutability: .readOnly,
              subAttributes: [
                A("value", mutability: .readOnly),
                A("$ref", .reference, mutability: .readOnly, referenceTypes: ["User", "Group"]),
                A("display", mutability: .readOnly),
                A("type", mutability: .readOnly, canonicalValues: ["direct", "indirect"]),
              ]),
            multi("entitlements", types: []),
            multi("roles", types: []),
            multi("x509Certificates", types: [], value: A("value", .binary)),
        ])

    public static let group = Schema(
        id: groupID, name: "Group", description: "Group",
        attributes: [
            A("displayName", required: true),
            A("members", .complex, multiValued: true,
              subAttributes: [
                A("value", mutability: .immutable),
                A("$ref", .reference, mutability: .immutable, referenceTypes: ["User", "Group"]),
                A("type", mutability: .immutable, canonicalValues: ["User", "Group"]),
                A("display", mutability: .readOnly),
              ]),
        ])

    public static let enterpriseUser = Schema(
        id: enterpriseUserID, name: "EnterpriseUser", description: "Enterprise User",
        attributes: [
            A("employeeNumber"), A("costCenter"), A("organization"), A("division"), A("department"),
            A("manager", .complex,
              subAttributes: [
                A("value"), A("$ref", .reference, referenceTypes: ["User"]),
                A("displayName", mutability: .readOnly),
              ]),
        ])

    public static let userResource = ResourceSchema(core: user, extensions: [enterpriseUser])
    public static let groupResource = ResourceSchema(core: group)
}

extension JSON {
    /// The ids (`value`) of a group's `members`, each once, in their order.
    public var memberIDs: [String] {
        var seen = Set<String>()
        return (self["members"]?.arrayValue ?? []).compactMap { $0["value"]?.stringValue }.filter { seen.insert($0).inserted }
    }
}
