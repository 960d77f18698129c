/// The discovery documents of RFC 7643 §5–7, built from one `Capabilities`.
public struct Discovery: Sendable {
    public static let serviceProviderConfigSchema = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    public static let resourceTypeSchema = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
    public static let oktaProviderConfigSchema = "urn:okta:schemas:scim:providerconfig:1.0"

    public var capabilities: Capabilities
    /// The app's SCIM base URL, e.g. `https://agent:8443/apps/hr/scim/v2`.
    public var baseURL: String

    public init(capabilities: Capabilities, baseURL: String) {
        self.capabilities = capabilities
        self.baseURL = baseURL
    }

    /// The ServiceProviderConfig. Okta's capability list rides along as the extension
    /// `urn:okta:schemas:scim:providerconfig:1.0` when `includeOktaExtension` (strict SCIM 2
    /// validators reject an extension they do not know, so it is served on request).
    public func serviceProviderConfig(includeOktaExtension: Bool = false) -> JSON {
        let c = capabilities
        let users = c.users
        let anySearch = (users?.operations.contains(.search) ?? false) || (c.groups?.operations.contains(.search) ?? false)
        let canPatch = (users?.canPatch ?? false) || (c.groups?.canPatch ?? false)
        let sort = (users?.sort ?? true) && (c.groups?.sort ?? true) && (users != nil || c.groups != nil)
        var spc: JSON = [
            "schemas": [.string(Self.serviceProviderConfigSchema)],
            "documentationUri": "https://github.com/provisioning-agent/provisioning-agent#readme",
            "patch": ["supported": .bool(canPatch)],
            "bulk": [
                "supported": true, "maxOperations": .number(Double(c.bulkMaxOperations)),
                "maxPayloadSize": .number(Double(c.bulkMaxPayloadSize)),
            ],
            "filter": ["supported": .bool(anySearch), "maxResults": .number(Double(c.filterMaxResults))],
            "changePassword": ["supported": .bool(users?.passwordWritable ?? false)],
            "sort": ["supported": .bool(sort)],
            // RFC 9865: index paging as ever, and cursors the agent issues for any target it can list.
            "pagination": [
                "cursor": .bool(anySearch), "index": .bool(anySearch), "defaultPaginationMethod": "index",
                "defaultPageSize": .number(Double(c.filterMaxResults)), "maxPageSize": .number(Double(c.filterMaxResults)),
                "cursorTimeout": .number(Double(PageCursor.timeout)),
            ],
            "etag": ["supported": true],
            "authenticationSchemes": .array(c.authenticationSchemes),
            "meta": [
                "resourceType": "ServiceProviderConfig", "location": .string(baseURL + "/ServiceProviderConfig"),
            ],
        ]
        if includeOktaExtension {
            spc["schemas"] = [.string(Self.serviceProviderConfigSchema), .string(Self.oktaProviderConfigSchema)]
            spc[Self.oktaProviderConfigSchema] = ["userManagementCapabilities": .array(c.oktaCapabilities.map(JSON.string))]
        }
        return spc
    }

    public var resourceTypes: [JSON] {
        Capabilities.ResourceKind.allCases.compactMap { kind in
            guard let r = capabilities.resource(kind) else { return nil }
            var o: JSONObject = [
                "schemas": [.string(Self.resourceTypeSchema)], "id": .string(kind.rawValue), "name": .string(kind.rawValue),
                "endpoint": .string(kind.endpoint),
                "description": .string(kind == .user ? "User Account" : "Group"), "schema": .string(r.schema.core.id),
            ]
            if !r.schema.extensions.isEmpty {
                o["schemaExtensions"] = .array(r.schema.extensions.map { ["schema": .string($0.id), "required": false] })
            }
            o["meta"] = ["resourceType": "ResourceType", "location": .string(baseURL + "/ResourceTypes/" + kind.rawValue)]
            return .object(o)
        }
    }

    public var schemas: [Schema] {
        var seen: [Schema] = []
        for kind in Capabilities.ResourceKind.allCases {
            guard let r = capabilities.resource(kind) else { continue }
            for s in [r.schema.core] + r.schema.extensions where !seen.contains(where: { $0.id == s.id }) { seen.append(s) }
        }
        return seen
    }

    public func schemaJSON(_ schema: Schema) -> JSON { schema.json(location: baseURL + "/Schemas/" + schema.id) }

    /// The SCIM 1.1 form Okta's on-premises agent reads from `/ServiceProviderConfigs`.
    public var oktaSCIM11ServiceProviderConfig: JSON {
        [
            "schemas": ["urn:scim:schemas:core:1.0", .string(Self.oktaProviderConfigSchema)],
            "documentationUrl": "https://github.com/provisioning-agent/provisioning-agent#readme",
            "patch": ["supported": .bool(capabilities.users?.canPatch ?? false)],
            "bulk": ["supported": false],
            "filter": ["supported": .bool(capabilities.users?.operations.contains(.search) ?? false), "maxResults": .number(Double(capabilities.filterMaxResults))],
            "changePassword": ["supported": .bool(capabilities.users?.passwordWritable ?? false)],
            "sort": ["supported": .bool(capabilities.users?.sort ?? false)],
            "etag": ["supported": false],
            "authenticationSchemes": .array(capabilities.authenticationSchemes),
            // Inside the extension object, as Okta's SCIM 1.1 reference shows it: Okta's agent
            // reads the list there, and assumes everything is implemented when it finds none.
            Self.oktaProviderConfigSchema: ["userManagementCapabilities": .array(capabilities.oktaCapabilities.map(JSON.string))],
        ]
    }
}

