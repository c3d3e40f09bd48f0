import Exporters
import GRPCBytes
import Foundation
import OTLPWire
import StitchCore
import StitchTestSupport
import Testing

/// Stitch forwarding over OTLP/gRPC (`otlp: { protocol: grpc }`) to a real grpc-swift server:
/// the same disk queue, sender and retries as OTLP/HTTP, the other transport.
@Suite("Forwarding to an OTLP/gRPC destination", .serialized)
struct GRPCForwardingTests {
    func forwardingFile(to port: Int) -> String {
        """
        destinations:
          - name: downstream
            otlp: { protocol: grpc, endpoint: "http://127.0.0.1:\(port)", headers: { x-tenant: acme } }
            retry: { initial_interval: 100ms, max_interval: 400ms }
        """
    }

    func post(_ port: Int, _ body: [UInt8]) async throws -> Int {
        try await RawHTTPClient(port: port).request(method: "POST", path: "/v1/traces",
                                                    headers: [("Content-Type", "application/x-protobuf")], body: body).status
    }

    func server(port: Int = 0) -> GRPCTraceTestServer {
        GRPCTraceTestServer(port: port, serializer: RawBytesCoding(), deserializer: RawBytesCoding())
    }

    /// Every (trace id, span id) the server received, and how many times.
    func received(_ server: GRPCTraceTestServer) throws -> [String: Int] {
        var seen: [String: Int] = [:]
        for call in server.calls {
            for span in try OTLPTraceDecoder.decode(call.message, experimentID: nil).spans {
                seen[span.traceID.hex + "/" + String(span.spanID.raw, radix: 16), default: 0] += 1
            }
        }
        return seen
    }

    @Test("a distributed trace posted in pieces arrives whole over gRPC, with the configured metadata")
    func forwards() async throws {
        let downstream = server()
        let port = try await downstream.start()
        try await StitchHarness.withStitch(file: forwardingFile(to: port)) { a in
            #expect(try await post(a.port, try Fixtures.bytes("02")) == 200)
            #expect(try await post(a.port, try Fixtures.bytes("01")) == 200)
            let spans = try await StitchHarness.poll("the trace downstream") { () -> Int? in
                let count = try received(downstream).count
                return count == 5 ? count : nil
            }
            #expect(spans == 5)
            let call = try #require(downstream.calls.first)
            #expect(call.value("x-tenant") == "acme")
            #expect(call.value("grpc-encoding") == "gzip")
            let decoded = try OTLPTraceDecoder.decode(call.message, experimentID: nil)
            #expect(Set(decoded.payload.resources.map(\.serviceName)) == ["service-a", "service-b"])
        }
        await downstream.shutdown()
    }

    @Test("the endpoint is down while 4,000 spans are sent; when it comes back every span arrives")
    func outage() async throws {
        let port = try StitchHarness.freePort()
        let traces = SyntheticTraces(traceCount: 200, spansPerService: 10, services: ["front", "back"], seed: 11)
        let expected = Set((0..<traces.traceCount).map { traces.traceID($0).hex })
        try await StitchHarness.withStitch(file: forwardingFile(to: port)) { a in
            for request in traces.requests(traces: 0..<traces.traceCount) {
                #expect(try await post(a.port, request.body) == 200)
            }
            // Let the traces be released, queued and retried while nothing listens downstream.
            try await Task.sleep(for: .milliseconds(1200))
            let downstream = server(port: port)
            _ = try await downstream.start()
            let spans = try await StitchHarness.poll("every span downstream", seconds: 60) { () -> Int? in
                let count = try received(downstream).count
                return count == traces.traceCount * traces.spansPerTrace ? count : nil
            }
            #expect(spans == 4000)
            let ids = try Set(received(downstream).keys.map { String($0.prefix { $0 != "/" }) })
            #expect(ids == expected)
            await downstream.shutdown()
        }
    }
}
