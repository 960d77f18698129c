import ConnectorSDK
import Foundation
import Testing
@testable import NativeConnector

/// The native connector's manifest reader: the shipped example reads clean, and a bad
/// manifest gets every problem at once, each naming the file and the key path.
@Suite struct NativeManifestTests {
    static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Examples/legacy-hr/hrapi.yaml").path

    func problems(_ yaml: String) -> [String] {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("manifest-\(UUID().uuidString).yaml").path
        FileManager.default.createFile(atPath: path, contents: Data(yaml.utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try Manifest.load(path)
            return []
        } catch {
            return error.problems.map { $0.replacingOccurrences(of: (path as NSString).lastPathComponent, with: "m.yaml") }
        }
    }

    @Test func theExampleReadsClean() throws {
        let m = try Manifest.load(Self.example)
        #expect(m.library == "libhrapi.so" && m.users?.create?.name == "hr_add_employee" && m.groups == nil)
        #expect(m.users?.find.map { $0.attribute.name } == ["userName"] && m.users?.list?.end == 1)
        #expect(m.results.status(-3) == 409 && m.results.status(0) == 0 && m.results.status(-99) == 500)
    }

    @Test func everyProblemIsReportedWithItsKeyPath() {
        let found = problems("""
            library: libx.so
            colour: blue
            results: { 0: ok, -1: 418x }
            users:
              create:
                function: x_add
                arguments:
                  - handle
                  - { type: int33, from: userName }
                  - { type: string, from: name.surname }
                  - { type: size_t, lengthOf: id }
              get:
                function: x_get
                arguments: [handle, { type: string, from: id }]
              rename: { function: x_rename }
            """)
        for expected in [
            "m.yaml: colour: unknown key",
            "m.yaml: results.-1: must be ok or an HTTP status from 400 to 599",
            "m.yaml: results: not total: add otherwise:",
            "m.yaml: users.create.arguments[1].type: unknown type int33",
            "m.yaml: users.create.arguments[2].from: name.surname is not an attribute of User",
            "m.yaml: users.create.arguments[3].lengthOf: no buffer of this function goes to id",
            "m.yaml: users.create.arguments: no argument gives the id (an output with to: id)",
            "m.yaml: users.rename: unknown operation",
            "m.yaml: users.create.arguments[0]: a handle, but no open: says how to get one",
        ] {
            #expect(found.contains { $0.hasPrefix(expected) }, "\(expected) not in \(found)")
        }
    }

    @Test func sourcesAreCheckedAgainstTheOperation() {
        let found = problems("""
            library: libx.so
            results: { 0: ok, otherwise: 500 }
            users:
              get:
                function: x_get
                arguments: [handle, { type: string, from: userName }, { type: int32*, state: p }]
              search:
                find:
                  nickName: { function: x_find, arguments: [handle, { type: buffer, size: 8, to: id }] }
                  shoeSize: { function: x_find2, arguments: [] }
            """)
        for expected in [
            "m.yaml: users.get.arguments[1].from: userName: here an argument comes from id",
            "m.yaml: users.get.arguments[2].type: a state is an int64*",
            "m.yaml: users.get.arguments: no argument is the id (from: id)",
            "m.yaml: users.search.find.nickName.arguments: no argument is the value searched for (from: value)",
            "m.yaml: users.search.find.shoeSize: shoeSize is not an attribute of User",
        ] {
            #expect(found.contains { $0.hasPrefix(expected) }, "\(expected) not in \(found)")
        }
        #expect(problems("library: [").first?.hasPrefix("m.yaml: not valid YAML") == true)
        #expect(problems("? [a, b]\n: c\n").first == "m.yaml: a key must be a plain string")
    }
}
