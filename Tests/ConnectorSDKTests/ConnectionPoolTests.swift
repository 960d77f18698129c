import Testing
import ConnectorSDK

/// A server whose restart kills every connection opened before it.
final class FakeServer: @unchecked Sendable {
    var generation = 0
    var connects = 0
    final class Connection {
        let server: FakeServer
        let generation: Int
        var broken = false
        init(_ server: FakeServer) { self.server = server; generation = server.generation }
        func query() throws -> Int {
            guard generation == server.generation else { broken = true; throw SCIMError(status: 503, detail: "server gone") }
            return generation
        }
    }
    func connect() -> Connection { connects += 1; return Connection(self) }
}

@Suite struct ConnectionPoolTests {
    @Test func aRestartCostsAReadNothingAndDropsEveryStaleConnection() throws {
        let server = FakeServer()
        let pool = ConnectionPool(size: 3, connect: { server.connect() }, isBroken: { $0.broken })
        // Three connections open and go back idle.
        _ = try pool.withConnection { a in try pool.withConnection { b in try pool.withConnection { c in try a.query() + b.query() + c.query() } } }
        #expect(server.connects == 3)
        server.generation += 1  // restart
        #expect(try pool.withConnection(idempotent: true) { try $0.query() } == 1)
        #expect(server.connects == 4)
        // The other two stale ones went with the first: a write finds a live connection.
        #expect(try pool.withConnection { try $0.query() } == 1)
        #expect(try pool.withConnection { try $0.query() } == 1)
        #expect(server.connects == 4)
    }

    @Test func aWriteOnAStaleConnectionFailsAndIsNotRunAgain() throws {
        let server = FakeServer()
        let pool = ConnectionPool(size: 2, connect: { server.connect() }, isBroken: { $0.broken })
        _ = try pool.withConnection { try $0.query() }
        server.generation += 1
        var runs = 0
        #expect(throws: SCIMError.self) { try pool.withConnection { c in runs += 1; return try c.query() } }
        #expect(runs == 1)
        #expect(try pool.withConnection { try $0.query() } == 1)
    }
}
