import Testing
@testable import OTLPWire

@Suite("TraceEncoder.encodeRequest (byte copying)")
struct TraceEncoderTests {
    @Test("re-encoding every span of a fixture reproduces the body", arguments: Fixtures.bodyNames)
    func reencodeFixture(name: String) throws {
        let body = try Fixtures.body(name)
        let batch = try OTLPTraceDecoder.decode(body, experimentID: nil)
        let encoded = OTLPTraceEncoder.encodeRequest(batch.spans)
        // The SDKs write fields in field-number order and nothing we drop, so the copy is exact.
        #expect(encoded == body)
    }

    @Test("spans from two requests are grouped by their own resources, first appearance first")
    func groupsAcrossPayloads() throws {
        let a = try OTLPTraceDecoder.decode(try Fixtures.body("01-otelsdk-serviceA-3spans.pb"), experimentID: nil)
        let b = try OTLPTraceDecoder.decode(try Fixtures.body("02-otelsdk-serviceB-2spans-remote-parent.pb"), experimentID: nil)
        let mixed = [b.spans[0], a.spans[0], b.spans[1], a.spans[1], a.spans[2]]
        let decoded = try OTLPTraceDecoder.decode(OTLPTraceEncoder.encodeRequest(mixed), experimentID: nil)
        #expect(decoded.payload.resources.map(\.serviceName) == ["service-b", "service-a"])
        #expect(decoded.spans.map(\.spanID) == [b.spans[0], b.spans[1], a.spans[0], a.spans[1], a.spans[2]].map(\.spanID))
        for (original, copy) in zip([b.spans[0], b.spans[1], a.spans[0], a.spans[1], a.spans[2]], decoded.spans) {
            #expect(try original.decodeDetail() == copy.decodeDetail())
        }
        #expect(try decoded.payload.resourceDetail(at: 1) == a.payload.resourceDetail(at: 0))
        #expect(try decoded.payload.scopeDetail(at: 0) == b.payload.scopeDetail(at: 0))
    }

    @Test("no spans: an empty request")
    func emptyRequest() throws {
        #expect(OTLPTraceEncoder.encodeRequest([]).isEmpty)
        let batch = try OTLPTraceDecoder.decode([], experimentID: nil)
        #expect(batch.spans.isEmpty)
        #expect(batch.payload.resources.isEmpty)
    }
}
