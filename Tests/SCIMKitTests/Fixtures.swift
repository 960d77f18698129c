import SCIMKit

/// Resources from RFC 7643 §8.2 / §8.3, trimmed to what the tests look at.
enum Fixtures {
    static func json(_ text: String) -> JSON { try! JSON.parse(text) }

    static let bjensen = json("""
        {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
         "id":"2819c223-7f76-453a-919d-413861904646","externalId":"701984","userName":"bjensen@example.com",
         "name":{"formatted":"Ms. Barbara J Jensen, III","familyName":"Jensen","givenName":"Barbara","middleName":"Jane"},
         "displayName":"Babs Jensen","nickName":"Babs","title":"Tour Guide","userType":"Employee","active":true,
         "emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],
         "addresses":[{"type":"work","streetAddress":"100 Universal City Plaza","locality":"Hollywood","region":"CA","postalCode":"91608","country":"USA","primary":true},
                      {"type":"home","streetAddress":"456 Hollywood Blvd","locality":"Hollywood","region":"CA","postalCode":"91608","country":"USA"}],
         "ims":[{"value":"someaimhandle","type":"aim"}],
         "x509Certificates":[{"value":"MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
         "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","costCenter":"4130","manager":{"value":"26118915-6090-4610-87e4-49d8ca9f808d"}},
         "meta":{"resourceType":"User","created":"2010-01-23T04:56:22Z","lastModified":"2011-05-13T04:42:34Z","version":"W/\\"3694e05e9dff591\\""}}
        """)

    static let jsmith = json("""
        {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"a1","userName":"jsmith","name":{"familyName":"O'Malley","givenName":"John"},
         "userType":"Intern","emails":[{"value":"john@example.org","type":"home"}],"ims":[{"value":"john@foo.com","type":"xmpp"}],
         "meta":{"resourceType":"User","created":"2011-05-13T04:42:34Z","lastModified":"2011-05-13T04:42:34Z"}}
        """)

    static let jdoe = json("""
        {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"a2","userName":"Jdoe","userType":"Contractor",
         "meta":{"resourceType":"User","created":"2012-01-01T00:00:00Z","lastModified":"2012-01-01T00:00:00+02:00"}}
        """)

    static let users = [bjensen, jsmith, jdoe]

    static let group = json("""
        {"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"e9e30dba-f08f-4109-8486-d5c6a331660a","displayName":"Tour Guides",
         "members":[{"value":"2819c223-7f76-453a-919d-413861904646","$ref":"https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646","display":"Babs Jensen"},
                    {"value":"902c246b-6245-4190-8e05-00816be7344a","$ref":"https://example.com/v2/Users/902c246b-6245-4190-8e05-00816be7344a","display":"Mandy Pepperidge"}]}
        """)
}
