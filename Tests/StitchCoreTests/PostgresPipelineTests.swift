import Foundation
import OTLPWire
import StitchTestSupport
import Testing

/// Whole Stitch instances with their store on a real PostgreSQL server.
@Suite struct PostgresPipelineTests {
    func post(_ port: Int, _ body: [UInt8]) async throws -> Int {
        try await RawHTTPClient(port: port).request(method: "POST", path: "/v1/traces",
                                                    headers: [("Content-Type", "application/x-protobuf")], body: body).status
    }

    func spanCount(_ server: PostgresTestServer, _ database: String) -> Int {
        Int((try? server.psql("SELECT count(*) FROM spans", database: database))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
    }

    @Test("the database goes down: accepted spans wait (503 once the hand-off is full), and every one is written when it is back")
    func databaseOutage() async throws {
        let server = try PostgresTestServer()
        defer { server.remove() }
        let database = try server.makeDatabase()
        let traces = SyntheticTraces(traceCount: 400, spansPerService: 3, services: ["api", "worker"], seed: 41)
        let flags = ["db": server.url(database: database), "store_queue_max_bytes": "16KiB", "retry_after": "1s"]
        try await StitchHarness.withStitch(flags: flags) { stitch in
            var accepted = 0
            for request in traces.requests(traces: 0..<50) {
                #expect(try await post(stitch.port, request.body) == 200)
                accepted += 3 * 50
            }
            _ = try await StitchHarness.poll("the first traces stored") { spanCount(server, database) == accepted ? true : nil }

            try server.kill()
            // (A 429 can come first, while the writer has not yet met the lost connection.)
            var unavailable = 0
            for start in stride(from: 50, to: 400, by: 5) {
                for request in traces.requests(traces: start..<start + 5) {
                    let status = try await post(stitch.port, request.body)
                    if status == 200 { accepted += 3 * 5 }
                    if status == 503 { unavailable += 1 }
                    #expect([200, 429, 503].contains(status), "got \(status)")
                }
                if unavailable > 0 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(unavailable > 0, "503 while the database was down and the hand-off full")

            try server.start()
            let stored = try await StitchHarness.poll("every accepted span", seconds: 60) { () -> Int? in
                let count = spanCount(server, database)
                return count == accepted ? count : nil
            }
            #expect(stored == accepted)
            // The query API reads the same database.
            let page = try await RawHTTPClient(port: stitch.port).request(method: "GET", path: "/api/v1/traces?max_results=5", headers: [], body: [])
            #expect(page.status == 200)
            #expect(String(decoding: page.body, as: UTF8.self).contains("\"trace_id\""))
        }
    }
}
