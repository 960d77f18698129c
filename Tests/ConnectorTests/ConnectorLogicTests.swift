import ConnectorSDK
import Testing
@testable import FlatFileConnector
@testable import LDAPConnector
@testable import MySQLConnector

/// The connectors' own logic, without their servers: how filters become SQL and LDAP
/// filters, how rows become resources, how CSV is written and read back.
@Suite struct SQLFilterTests {
    let users = SQLFilter(table: Mapping.defaultMapping.users, kind: .user)

    func clause(_ text: String) throws -> SQLFilter.Clause? { users.clause(try Filter(parsing: text)) }

    @Test func valuesAreParametersNeverSQLText() throws {
        let c = try #require(try clause(#"userName eq "x' OR '1'='1""#))
        #expect(!c.sql.contains("'1'='1"))
        #expect(c.params == [.string("x' OR '1'='1")])
        #expect(c.exact)
    }

    @Test func andPushesWhatItCanAndSaysItIsNotExact() throws {
        let both = try #require(try clause(#"userName eq "a" and title eq "b""#))
        #expect(both.sql.contains(" AND ") && both.params == [.string("a"), .string("b")] && both.exact)
        // A value-path filter narrows to its attribute's column but is not exact: the agent
        // checks the type on the rows it returns.
        let typed = try #require(try clause(#"emails[type eq "work" and value eq "a@x"]"#))
        #expect(!typed.exact)
        let half = try #require(try clause(#"userName eq "a" and emails[type eq "work" and value eq "a@x"]"#))
        #expect(!half.exact)
    }

    @Test func notKeepsRowsWhereTheAttributeIsAbsent() throws {
        let c = try #require(try clause(#"not (title eq "boss")"#))
        #expect(c.sql.hasPrefix("NOT COALESCE("))
        #expect(c.params == [.string("boss")])
    }

    @Test func sortingIsByAQuotedColumn() {
        #expect(users.orderBy(AttributePath(name: "userName"), descending: true)?.contains("`userName`") == true)
    }
}

@Suite struct LDAPFilterTests {
    @Test func rfc4515Escaping() {
        #expect(LDAPFilter.escape("a*b(c)d\\e") == #"a\2ab\28c\29d\5ce"#)
        #expect(LDAPFilter.escape("nul\u{0}") == #"nul\00"#)
        #expect(LDAPFilter.escape("Jürgen") == "Jürgen")  // UTF-8 passes as it is
    }

    @Test func filtersBecomeLDAPFilters() throws {
        let f = LDAPFilter(schema: CoreSchemas.userResource, attribute: { p in p.name.caselessEquals("userName") ? "uid" : nil }, timestampAttribute: { _ in nil })
        let c = try #require(f.clause(try Filter(parsing: #"userName eq "a*)(uid=*""#)))
        #expect(c.text == #"(uid=a\2a\29\28uid=\2a)"#)
        #expect(c.exact)
        #expect(f.clause(try Filter(parsing: #"title eq "x""#)) == nil)  // not mapped: the agent filters
        let and = try #require(f.clause(try Filter(parsing: #"userName sw "ab" and title eq "x""#)))
        #expect(!and.exact)
    }

    @Test func timestampsBecomeGeneralizedTime() {
        #expect(LDAPFilter.generalizedTime("2011-05-13T04:42:34Z") == "20110513044234Z")
        #expect(LDAPFilter.generalizedTime("2011-05-13T06:42:34+02:00") == "20110513044234Z")
        #expect(LDAPFilter.generalizedTime("yesterday") == nil)
    }
}

@Suite struct RowCodecTests {
    @Test func aRowBecomesTheResourceItWasWrittenFrom() throws {
        let table = Mapping.defaultMapping.users
        let codec = RowCodec(table: table, kind: .user)
        let user: JSON = ["userName": "ada", "name": ["givenName": "Ada", "familyName": "Lovelace"], "active": true,
                          "emails": [["value": "ada@example.com", "primary": true]], "title": "Countess", "nickName": "A"]
        var byColumn: [String: String] = ["id": "42", "created": "2024-01-02 03:04:05.678", "lastModified": "2024-01-02 03:04:05.678"]
        for (column, value) in try codec.columnValues(user) { if case .string(let s) = value { byColumn[column] = s } }
        let back = codec.resource(table.selectColumns.map { byColumn[$0] })
        #expect(back["id"] == "42")
        #expect(back["userName"] == "ada")
        #expect(back["name"]?["familyName"] == "Lovelace")
        #expect(back["emails"]?.arrayValue?.first?["value"] == "ada@example.com")
        #expect(back["title"] == "Countess")
        #expect(back["nickName"] == "A")  // no column: kept in the attributes column
        #expect(back["meta"]?["created"] == "2024-01-02T03:04:05.678Z")
    }

    @Test func timesConvert() {
        #expect(RowCodec.rfc3339("2024-01-02 03:04:05.678") == "2024-01-02T03:04:05.678Z")
        #expect(RowCodec.sqlDateTime("2024-01-02T05:04:05.678+02:00") == "2024-01-02 03:04:05.678")
        #expect(RowCodec.sqlDateTime("not a time") == nil)
    }
}

@Suite struct CSVTests {
    @Test func fieldsRoundTrip() throws {
        let rows = [["plain", "with,comma", "with \"quotes\"", "line\nbreak", ""], ["\u{FEFF}bom", "Jürgen", " spaced "]]
        #expect(try CSV.decode(Array(CSV.encode(rows).utf8)) == rows)
    }

    @Test func aRowWithOneEmptyFieldIsNotAnEmptyLine() throws {
        #expect(try CSV.decode(Array(CSV.encode([[""], ["a"]]).utf8)) == [[""], ["a"]])
    }

    @Test func anUnterminatedQuoteIsAnError() {
        #expect(throws: CSV.ParseError.self) { try CSV.decode(Array("a,\"b\n".utf8)) }
    }
}
