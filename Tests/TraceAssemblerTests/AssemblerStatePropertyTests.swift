import OTLPWire
import StitchTestSupport
import Testing
@testable import TraceAssembler
import TraceEdge

/// Randomised runs (seeded) checked against rules stated independently of the implementation.
@Suite struct AssemblerStatePropertyTests {
    let configuration = AssemblerConfiguration(
        idleTimeout: .seconds(2), maxTraceAge: .seconds(10), maxSpansPerTrace: 5,
        maxTraces: 15, maxBufferedBytes: 6_000, lateWindow: .seconds(20))

    @Test(arguments: [1, 2, 3, 42, 2024, 0xDEAD_BEEF] as [UInt64])
    func everyNonDuplicateSpanIsReleasedExactlyOnce(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var state = AssemblerState<TestInstant>(configuration: configuration)
        var now = TestInstant.zero
        var releases: [FinishedTrace] = []
        var totals = IngestSummary()
        var ingested = 0
        var keyOfSerial: [UInt64: String] = [:]

        for _ in 0..<3_000 {
            if UInt64.random(in: 0..<10, using: &random) < 7 {
                let batch = (0..<Int.random(in: 1...8, using: &random)).map { _ -> SpanRecord in
                    let spanID = UInt64.random(in: 1...10, using: &random)
                    let traceLow = UInt64.random(in: 1...40, using: &random)
                    ingested += 1
                    keyOfSerial[UInt64(ingested)] = "\(traceLow)/\(spanID)"
                    return TestSpans.span(
                        trace: traceLow,
                        id: spanID,
                        parent: spanID == 1 ? 0 : UInt64.random(in: 1..<spanID, using: &random),
                        size: Int.random(in: 50...400, using: &random),
                        serial: UInt64(ingested))
                }
                let (summary, released) = state.receive(batch, now: now)
                #expect(summary.accepted + summary.duplicates + summary.late == batch.count)
                totals.accepted += summary.accepted
                totals.duplicates += summary.duplicates
                totals.late += summary.late
                releases += released
                #expect(state.stats.bufferedTraces <= configuration.maxTraces)
                #expect(state.stats.bufferedBytes <= configuration.maxBufferedBytes)
            } else {
                now = now.advanced(by: .milliseconds(Int64.random(in: 0...3_000, using: &random)))
                releases += state.tick(now: now)
            }
        }
        releases += state.flush(now: now)

        // Exactly once: no serial twice; released + duplicates = ingested.
        var releasedSerials = Set<UInt64>()
        var firstSerialOfKey: [String: UInt64] = [:]
        for trace in releases {
            for span in trace.spans {
                #expect(span.traceID == trace.traceID)
                #expect(releasedSerials.insert(span.startTimeUnixNano).inserted, "span released twice")
                let key = "\(span.traceID.low)/\(span.spanID.raw)"
                firstSerialOfKey[key] = min(firstSerialOfKey[key] ?? .max, span.startTimeUnixNano)
            }
            let serials = trace.spans.map(\.startTimeUnixNano)
            #expect(serials == serials.sorted(), "arrival order")
            #expect(!trace.spans.isEmpty)
        }
        #expect(releasedSerials.count + totals.duplicates == ingested)
        #expect(releasedSerials.count == totals.accepted + totals.late)
        #expect(state.stats == AssemblerStats())
        #expect(state.counters.totalReleasedSpans == releasedSerials.count)
        #expect(state.counters.totalReleasedTraces == releases.count)
        #expect(state.counters.duplicateSpans == totals.duplicates)

        // Each dropped duplicate's ids were released from an earlier arrival (first wins).
        for (serial, key) in keyOfSerial where !releasedSerials.contains(serial) {
            let first = firstSerialOfKey[key]
            #expect(first != nil && first! < serial, "duplicate \(key) without an earlier released original")
        }

        // Completeness, recomputed from the released spans: parts accumulate until the final release.
        var parts: [TraceID: [SpanRecord]] = [:]
        for trace in releases {
            switch trace.reason {
            case .late:
                #expect(!trace.isComplete)
            case .tooLarge:
                #expect(!trace.isComplete)
                #expect(trace.spans.count == configuration.maxSpansPerTrace)
                parts[trace.traceID, default: []] += trace.spans
            default:
                #expect(trace.spans.count <= configuration.maxSpansPerTrace)
                let all = (parts.removeValue(forKey: trace.traceID) ?? []) + trace.spans
                let ids = Set(all.map(\.spanID))
                #expect(ids.count == all.count, "no span id twice within one buffered trace")
                let closed = all.contains { $0.isRoot } && all.allSatisfy { $0.isRoot || ids.contains($0.parentSpanID) }
                #expect(trace.isComplete == closed, "\(trace.reason) \(trace.traceID.low)")
                if trace.reason == .closed { #expect(trace.isComplete) }
            }
        }
        #expect(parts.isEmpty, "every oversized trace had a final release")
        // The run is only a test of the rules if it hit every one of them.
        for reason in ReleaseReason.allCases {
            #expect(state.counters.releasedTraces[reason, default: 0] > 0, "no \(reason) release in this run")
        }
        #expect(totals.duplicates > 0)
    }
}
