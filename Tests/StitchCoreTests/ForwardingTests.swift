import Foundation
import OTLPWire
import StitchCore
import StitchTestSupport
import Testing
import SQLiteStore
import TraceModel

/// Stitch in front of Stitch: A forwards finished traces over OTLP/HTTP to B, which stores them.
@Suite("Forwarding to an OTLP destination", .serialized)
struct ForwardingTests {
    func forwardingFile(to port: Int) -> String {
        """
        destinations:
          - name: downstream
            otlp: { endpoint: "http://127.0.0.1:\(port)/v1/traces" }
            retry: { initial_interval: 100ms, max_interval: 400ms }
        """
    }

    func post(_ port: Int, _ body: [UInt8]) async throws -> Int {
        try await RawHTTPClient(port: port).request(method: "POST", path: "/v1/traces",
                                                    headers: [("Content-Type", "application/x-protobuf")], body: body).status
    }

    /// Counts the traces in a store that have `spans` spans each, reading a fresh read-only view.
    func completeTraces(_ db: String, ids: [TraceID], spans: Int) throws -> Int {
        guard FileManager.default.fileExists(atPath: db) else { return 0 }
        let store = try SQLiteTraceStore(path: db, readOnly: true)
        return try ids.reduce(0) { count, id in
            let trace = try store.trace(id: "tr-" + id.hex)
            return count + (trace?.spans.count == spans ? 1 : 0)
        }
    }

    @Test("a distributed trace posted to A in pieces is stored in B once and whole, each span with its own resource")
    func chaining() async throws {
        try await StitchHarness.withStitch { b in
            try await StitchHarness.withStitch(file: forwardingFile(to: b.port)) { a in
                #expect(try await post(a.port, try Fixtures.bytes("02")) == 200)
                #expect(try await post(a.port, try Fixtures.bytes("01")) == 200)
                let store = try SQLiteTraceStore(path: b.db, readOnly: true)
                let trace = try await StitchHarness.poll("the trace in B") { try store.trace(id: "tr-3bb6c5d66706eddb63619b9d8070258a") }
                #expect(trace.spans.count == 5)
                #expect(trace.info.status == "OK")
                #expect(trace.info.tags["stitch.services"] == "service-a,service-b")
                let services = Dictionary(uniqueKeysWithValues: trace.spans.map { ($0.name, $0.serviceName) })
                #expect(services["A-root"] == "service-a")
                #expect(services["B-db"] == "service-b")
                #expect(try store.search(TraceQuery()).traces.count == 1)
            }
        }
    }

    @Test("the endpoint is down while 10,000 spans are sent; when it comes back every span arrives")
    func outage() async throws {
        let downstreamPort = try StitchHarness.freePort()
        let traces = SyntheticTraces(traceCount: 500, spansPerService: 10, services: ["front", "back"], seed: 7)
        let ids = (0..<traces.traceCount).map(traces.traceID)
        try await StitchHarness.withStitch(file: forwardingFile(to: downstreamPort)) { a in
            for chunk in stride(from: 0, to: traces.traceCount, by: 100) {
                for request in traces.requests(traces: chunk..<min(chunk + 100, traces.traceCount)) {
                    #expect(try await post(a.port, request.body) == 200)
                }
            }
            // Let the traces be released and queued while nobody listens downstream.
            try await Task.sleep(for: .milliseconds(600))
            try await StitchHarness.withStitch(flags: ["listen": "127.0.0.1:\(downstreamPort)"]) { b in
                let stored = try await StitchHarness.poll("all traces in B", seconds: 60) { () -> Int? in
                    let count = try completeTraces(b.db, ids: ids, spans: traces.spansPerTrace)
                    return count == ids.count ? count : nil
                }
                #expect(stored == 500)
            }
        }
    }

    @Test("a restart in the middle of an outage loses nothing queued")
    func restartKeepsQueue() async throws {
        let downstreamPort = try StitchHarness.freePort()
        let queues = FileManager.default.temporaryDirectory.appendingPathComponent("stitch-queues-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: queues) }
        let traces = SyntheticTraces(traceCount: 200, spansPerService: 5, services: ["front", "back"], seed: 9)
        let ids = (0..<traces.traceCount).map(traces.traceID)
        let flags = ["queue_dir": queues.path]
        try await StitchHarness.withStitch(flags: flags, file: forwardingFile(to: downstreamPort)) { a in
            for request in traces.requests(traces: 0..<traces.traceCount) {
                #expect(try await post(a.port, request.body) == 200)
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        // A second life of A with the same queue directory delivers what the first one queued.
        try await StitchHarness.withStitch(flags: ["listen": "127.0.0.1:\(downstreamPort)"]) { b in
            try await StitchHarness.withStitch(flags: flags, file: forwardingFile(to: downstreamPort)) { _ in
                let stored = try await StitchHarness.poll("all traces in B", seconds: 60) { () -> Int? in
                    let count = try completeTraces(b.db, ids: ids, spans: traces.spansPerTrace)
                    return count == ids.count ? count : nil
                }
                #expect(stored == 200)
            }
        }
    }
}
