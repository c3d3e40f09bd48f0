import Testing
@testable import OTLPWire

@Suite("OTLPTraceDecoder.compacted (spans moved into a payload of their own)")
struct PayloadCompactionTests {
    /// Two resources (one with a schema URL), three scopes, spans with attributes and status.
    static func request(experimentID: String? = "7") throws -> DecodedBatch {
        func span(_ trace: UInt64, _ id: UInt64, parent: UInt64 = 0) -> SpanDetail {
            SpanDetail(
                traceID: TraceID(high: 1, low: trace), spanID: SpanID(raw: id), parentSpanID: SpanID(raw: parent),
                name: "span-\(trace)-\(id)", kind: 2, startTimeUnixNano: 1_000 + id, endTimeUnixNano: 2_000 + id,
                attributes: [KeyValue(key: "k", value: .string(String(repeating: "v", count: Int(id) * 40)))],
                statusCode: 2, statusMessage: "bad \(id)", flags: 0x100)
        }
        let resourceA = ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string("agent"))])
        let resourceB = ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string("tool"))])
        let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [
            ResourceSpansDetail(resource: resourceA, scopeSpans: [
                ScopeSpansDetail(scope: ScopeDetail(name: "one", version: "1"), spans: [span(1, 1), span(2, 2, parent: 9)]),
                ScopeSpansDetail(scope: ScopeDetail(name: "two", version: "2"), spans: [span(1, 3, parent: 1)],
                                 schemaURL: "https://scope.example/1"),
            ], schemaURL: "https://resource.example/1"),
            ResourceSpansDetail(resource: resourceB, scopeSpans: [
                ScopeSpansDetail(scope: nil, spans: [span(2, 4, parent: 2), span(3, 5)]),
            ]),
        ])
        return try OTLPTraceDecoder.decode(body, experimentID: experimentID)
    }

    @Test("the moved records read as the originals, in the order given, from a payload of only them")
    func movedRecordsReadTheSame() throws {
        let batch = try Self.request()
        let kept = [batch.spans[4], batch.spans[1], batch.spans[3]]
        let moved = try #require(OTLPTraceDecoder.compacted(kept))
        #expect(moved.count == kept.count)
        let compact = moved[0].payload
        #expect(moved.allSatisfy { $0.payload === compact })
        #expect(compact !== batch.payload)
        #expect(compact.experimentID == "7")
        // Only the kept spans and what they need: a valid request of them, smaller than the original.
        #expect(compact.bytes == OTLPTraceEncoder.encodeRequest(kept))
        #expect(compact.bytes.count < batch.payload.bytes.count)
        for (original, copy) in zip(kept, moved) {
            #expect(copy.traceID == original.traceID)
            #expect(copy.spanID == original.spanID)
            #expect(copy.parentSpanID == original.parentSpanID)
            #expect(copy.startTimeUnixNano == original.startTimeUnixNano)
            #expect(copy.endTimeUnixNano == original.endTimeUnixNano)
            #expect(copy.flags == original.flags && copy.kind == original.kind && copy.statusCode == original.statusCode)
            #expect(copy.encodedSize == original.encodedSize)
            #expect(copy.serviceName == original.serviceName)
            #expect(try copy.decodeDetail() == original.decodeDetail())
            #expect(try copy.payload.resourceDetail(at: copy.resourceIndex) == original.payload.resourceDetail(at: original.resourceIndex))
            #expect(try copy.payload.scopeDetail(at: copy.scopeIndex) == original.payload.scopeDetail(at: original.scopeIndex))
            #expect(copy.resource.schemaURL.count == original.resource.schemaURL.count)
            #expect(copy.payload.scopes[copy.scopeIndex].schemaURL.count == original.payload.scopes[original.scopeIndex].schemaURL.count)
            var layout = SpanLayout()
            #expect(try copy.layout(into: &layout))
            #expect(Array(copy.payload.bytes[layout.name]) == Array("span-\(copy.traceID.low)-\(copy.spanID.raw)".utf8))
        }
        // Forwarding the moved records sends the same bytes as forwarding the originals.
        #expect(OTLPTraceEncoder.encodeRequest(moved) == OTLPTraceEncoder.encodeRequest(kept))
    }

    @Test("schema URLs and scopes survive a move")
    func schemaURLsSurvive() throws {
        let batch = try Self.request(experimentID: nil)
        let moved = try #require(OTLPTraceDecoder.compacted([batch.spans[2]]))
        let record = moved[0]
        let bytes = record.payload.bytes
        #expect(Array(bytes[record.resource.schemaURL]) == Array("https://resource.example/1".utf8))
        #expect(Array(bytes[record.payload.scopes[record.scopeIndex].schemaURL]) == Array("https://scope.example/1".utf8))
        #expect(try record.payload.scopeDetail(at: record.scopeIndex) == ScopeDetail(name: "two", version: "2"))
        #expect(record.payload.experimentID == nil)
        #expect(record.payload.resources.count == 1 && record.payload.scopes.count == 1)
    }

    @Test("nothing to move, or spans of two payloads: nil")
    func refusesWhatItCannotMove() throws {
        let a = try Self.request()
        let b = try Self.request()
        #expect(OTLPTraceDecoder.compacted([]) == nil)
        #expect(OTLPTraceDecoder.compacted([a.spans[0], b.spans[1]]) == nil)
        #expect(OTLPTraceDecoder.compacted([a.spans[0], a.spans[0]]) == nil)
    }
}
