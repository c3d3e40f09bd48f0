import Foundation
import OTLPModel
import SwiftProtobuf
import Testing
@testable import OTLPWire

/// The fast reader against swift-protobuf (the reference), on the same bytes.
@Suite("Differential: fast reader vs swift-protobuf")
struct DifferentialTests {
    /// Compares everything the fast path and the detail decoders produce with the reference's reading.
    static func compare(_ bytes: [UInt8], _ context: Comment) throws {
        let reference = try Oracle.parse(bytes)
        let batch = try OTLPTraceDecoder.decode(bytes, experimentID: nil)

        // Resources and scopes: one entry per ResourceSpans / ScopeSpans, in order.
        #expect(batch.payload.resources.count == reference.resourceSpans.count, context)
        var expectedScopes: [(resource: Int, scopeSpans: PBScopeSpans)] = []
        for (index, resourceSpans) in reference.resourceSpans.enumerated() {
            #expect(batch.payload.resources[index].serviceName == Oracle.serviceName(resourceSpans), context)
            let resource = try batch.payload.resourceDetail(at: index)
            #expect(resource.canonical == Oracle.resource(resourceSpans.resource).canonical, context)
            expectedScopes += resourceSpans.scopeSpans.map { (index, $0) }
        }
        #expect(batch.payload.scopes.count == expectedScopes.count, context)
        for (index, expected) in expectedScopes.enumerated() where index < batch.payload.scopes.count {
            #expect(batch.payload.scopes[index].resourceIndex == expected.resource, context)
            #expect(try batch.payload.scopeDetail(at: index).canonical == Oracle.scope(expected.scopeSpans.scope).canonical, context)
        }

        // Spans: the valid ones in request order; the others counted, the first one named.
        var accepted: [(scope: Int, span: PBSpan)] = []
        var rejected = 0
        var firstRejection: String?
        var scopeIndex = 0
        for (resourceIndex, resourceSpans) in reference.resourceSpans.enumerated() {
            for (scopeSpansIndex, scopeSpans) in resourceSpans.scopeSpans.enumerated() {
                for (spanIndex, span) in scopeSpans.spans.enumerated() {
                    if let problem = Oracle.rejection(span) {
                        rejected += 1
                        if firstRejection == nil {
                            firstRejection = "resource_spans[\(resourceIndex)].scope_spans[\(scopeSpansIndex)].spans[\(spanIndex)]: \(problem)"
                        }
                    } else {
                        accepted.append((scopeIndex, span))
                    }
                }
                scopeIndex += 1
            }
        }
        #expect(batch.rejectedSpans == rejected, context)
        #expect(batch.firstRejection == firstRejection, context)
        #expect(batch.spans.count == accepted.count, context)
        for (record, expected) in zip(batch.spans, accepted) {
            let span = expected.span
            #expect(record.traceID.bytes == Array(span.traceID), context)
            #expect(record.spanID.bytes == Array(span.spanID), context)
            #expect(record.parentSpanID == (SpanID(bytes: span.parentSpanID) ?? .none), context)
            #expect(record.isRoot == (span.parentSpanID.isEmpty || span.parentSpanID.allSatisfy { $0 == 0 }), context)
            #expect(record.startTimeUnixNano == span.startTimeUnixNano, context)
            #expect(record.endTimeUnixNano == span.endTimeUnixNano, context)
            #expect(record.flags == span.flags, context)
            #expect(Int(record.kind) == span.kind.rawValue, context)
            #expect(Int(record.statusCode) == span.status.code.rawValue, context)
            #expect(record.scopeIndex == expected.scope, context)
            #expect(try record.decodeDetail().canonical == Oracle.span(span).canonical, context)
            // The byte range is the span message itself.
            let copy = try PBSpan(serializedBytes: Array(bytes[record.spanBytes]))
            #expect(try copy.serializedBytes() as [UInt8] == span.serializedBytes(), context)
        }

        // Whole-request detail decoding agrees too.
        #expect(try OTLPTraceDecoder.decodeDetail(bytes).canonical == Oracle.detail(reference).canonical, context)

        // Byte-copying re-encode keeps every accepted span with its resource and scope.
        let reencoded = OTLPTraceEncoder.encodeRequest(batch.spans)
        let again = try OTLPTraceDecoder.decode(reencoded, experimentID: nil)
        #expect(again.rejectedSpans == 0, context)
        #expect(again.spans.count == batch.spans.count, context)
        for (original, copy) in zip(batch.spans, again.spans) {
            #expect(try copy.decodeDetail().canonical == original.decodeDetail().canonical, context)
            #expect(try again.payload.resourceDetail(at: copy.resourceIndex).canonical == batch.payload.resourceDetail(at: original.resourceIndex).canonical, context)
            #expect(try again.payload.scopeDetail(at: copy.scopeIndex).canonical == batch.payload.scopeDetail(at: original.scopeIndex).canonical, context)
            #expect(copy.serviceName == original.serviceName, context)
        }
        // One ResourceSpans per resource that still has spans, one ScopeSpans per such scope.
        #expect(again.payload.resources.count == Set(batch.spans.map(\.resourceIndex)).count, context)
        #expect(again.payload.scopes.count == Set(batch.spans.map(\.scopeIndex)).count, context)
    }

    @Test("fixtures: fast reader equals swift-protobuf", arguments: Fixtures.bodyNames)
    func fixtures(name: String) throws {
        try Self.compare(try Fixtures.body(name), "\(name)")
    }

    @Test("fixtures, rewritten (fields reordered, decoys, wrong wire types)", arguments: Fixtures.bodyNames)
    func mutatedFixtures(name: String) throws {
        let body = try Fixtures.body(name)
        for seed in 0..<20 as Range<UInt64> {
            var mutator = WireMutator(seed: seed)
            mutator.decoyProbability = 0.3
            try Self.compare(mutator.mutate(body), "\(name) seed \(seed)")
        }
    }

    @Test("300 random requests, as swift-protobuf writes them and rewritten", arguments: 0..<30)
    func randomRequests(chunk: Int) throws {
        for seed in UInt64(chunk * 10 + 1)...UInt64(chunk * 10 + 10) {
            var generator = RandomRequests(seed: seed)
            let bytes: [UInt8] = try generator.request().serializedBytes()
            try Self.compare(bytes, "seed \(seed)")
            var mutator = WireMutator(seed: seed)
            try Self.compare(mutator.mutate(bytes), "seed \(seed), rewritten")
        }
    }

    @Test("random requests encoded from the detail model are what swift-protobuf reads")
    func detailEncoder() throws {
        for seed in 1...100 as ClosedRange<UInt64> {
            var generator = RandomRequests(seed: seed)
            let reference = generator.request(maxSpansPerScope: 10)
            let detail = Oracle.detail(reference)
            let bytes = OTLPTraceEncoder.encodeRequest(resourceSpans: detail)
            #expect(Oracle.detail(try Oracle.parse(bytes)).canonical == detail.canonical, "seed \(seed)")
        }
    }
}

