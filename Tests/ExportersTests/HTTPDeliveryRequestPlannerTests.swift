import OTLPWire
import Receiver
import Testing
import TraceEdge
@testable import Exporters

@Suite("RequestPlanner")
struct HTTPDeliveryRequestPlannerTests {
    /// Every span of every planned request, decoded back, as (trace low bits, span id).
    private func spanKeys(_ requests: [PlannedRequest], compression: HTTPCompression) throws -> [[SpanKeyPair]] {
        try requests.map { request in
            let body = compression == .gzip
                ? try BodyDecompressor.decompress(request.body, encoding: .gzip, limit: 256 << 20)
                : request.body
            return try OTLPTraceDecoder.decode(body, experimentID: nil).spans.map { SpanKeyPair(trace: $0.traceID.low, span: $0.spanID.raw) }
        }
    }

    private struct SpanKeyPair: Hashable { var trace: UInt64; var span: UInt64 }

    @Test("small traces share one request, grouped by resource, spans byte-identical")
    func smallBatchOneRequest() throws {
        let traces = try (1...3).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 4, services: ["a", "b"]) }
        let requests = try RequestPlanner(compression: .gzip, maxRequestBytes: 4 << 20).plan(traces.map(\.spans))
        #expect(requests.count == 1)
        let body = try BodyDecompressor.decompress(requests[0].body, encoding: .gzip, limit: 1 << 20)
        #expect(body == OTLPTraceEncoder.encodeRequest(traces.flatMap(\.spans)))
        let decoded = try OTLPTraceDecoder.decode(body, experimentID: nil)
        #expect(decoded.spans.count == 12)
        // One ResourceSpans per (received request, resource): 3 requests × 2 services.
        #expect(decoded.payload.resources.map(\.serviceName) == ["a", "b", "a", "b", "a", "b"])
        let original = Dictionary(uniqueKeysWithValues: traces.flatMap(\.spans).map { (SpanKeyPair(trace: $0.traceID.low, span: $0.spanID.raw), Array($0.payload.bytes[$0.spanBytes])) })
        for span in decoded.spans {
            #expect(Array(body[span.spanBytes]) == original[SpanKeyPair(trace: span.traceID.low, span: span.spanID.raw)])
        }
    }

    @Test("a batch over the cap becomes several requests under it, every span exactly once, in order",
          arguments: [HTTPCompression.gzip, .none])
    func splitsAtCap(compression: HTTPCompression) throws {
        let traces = try (1...12).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 5, payloadBytes: 2000) }
        let cap = 32 * 1024
        let requests = try RequestPlanner(compression: compression, maxRequestBytes: cap).plan(traces.map(\.spans))
        #expect(requests.count >= 4, "12 × ~10 KB of incompressible spans need at least 4 requests of 32 KiB")
        #expect(requests.allSatisfy { $0.body.count <= cap })
        let keys = try spanKeys(requests, compression: compression).flatMap { $0 }
        let expected = traces.flatMap { trace in trace.spans.map { SpanKeyPair(trace: trace.traceID.low, span: $0.spanID.raw) } }
        #expect(keys == expected)
        #expect(requests.map(\.spanCount).reduce(0, +) == 60)
    }

    @Test("one trace over the cap is cut inside, each part keeping its resources")
    func splitsOneLargeTrace() throws {
        let trace = try ExportTestTraces.synthetic(trace: 9, spanCount: 40, payloadBytes: 1500, services: ["front", "back"])
        let cap = 16 * 1024
        let requests = try RequestPlanner(compression: .gzip, maxRequestBytes: cap).plan([trace.spans])
        #expect(requests.count >= 4)
        #expect(requests.allSatisfy { $0.body.count <= cap })
        var seen: [UInt64] = []
        for request in requests {
            let body = try BodyDecompressor.decompress(request.body, encoding: .gzip, limit: 1 << 20)
            let decoded = try OTLPTraceDecoder.decode(body, experimentID: nil)
            for span in decoded.spans {
                // Each span sits under the resource it was received with.
                #expect(span.serviceName == (span.spanID.raw % 2 == 1 ? "front" : "back"))
                seen.append(span.spanID.raw)
            }
        }
        #expect(seen == trace.spans.map(\.spanID.raw))
    }

    @Test("a single span over the cap goes alone; over the hard limit it is refused")
    func oversizedSpan() throws {
        let trace = try ExportTestTraces.synthetic(trace: 3, spanCount: 3, payloadBytes: 20_000)
        let planner = RequestPlanner(compression: .none, maxRequestBytes: 8 * 1024, spanRequestLimit: 64 * 1024)
        let requests = try planner.plan([trace.spans])
        #expect(requests.count == 3)
        #expect(requests.allSatisfy { $0.spanCount == 1 && $0.body.count > 8 * 1024 && $0.body.count <= 64 * 1024 })

        let tight = RequestPlanner(compression: .none, maxRequestBytes: 8 * 1024, spanRequestLimit: 16 * 1024)
        #expect(throws: OversizedSpanError.self) { try tight.plan([trace.spans]) }
    }

    @Test("split points halve by bytes and never leave a side empty")
    func splitIndex() {
        #expect(RequestPlanner.splitIndex([1, 1]) == 1)
        #expect(RequestPlanner.splitIndex([100, 1, 1, 1]) == 1)
        #expect(RequestPlanner.splitIndex([1, 1, 1, 100]) == 3)
        #expect(RequestPlanner.splitIndex([10, 10, 10, 10]) == 2)
        #expect(RequestPlanner.splitIndex([0, 0, 0]) == 1)
    }

    @Test("empty input plans nothing")
    func empty() throws {
        #expect(try RequestPlanner(compression: .gzip, maxRequestBytes: 1024).plan([[], []]).isEmpty)
    }
}
