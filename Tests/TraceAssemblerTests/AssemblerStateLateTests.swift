import OTLPWire
import Testing
@testable import TraceAssembler
import TraceEdge

/// Duplicates and late fragments (DESIGN.md: retries are normal; nothing is lost and no second trace).
@Suite struct AssemblerStateLateTests {
    let configuration = AssemblerConfiguration(idleTimeout: .seconds(2), lateWindow: .seconds(60))

    @Test func duplicateSpansAreKeptOnceFirstWins() {
        var harness = Harness(configuration)
        let first = harness.receive([
            TestSpans.span(trace: 1, id: 1, serial: 1),
            TestSpans.span(trace: 1, id: 2, parent: 1, serial: 2),
            TestSpans.span(trace: 1, id: 2, parent: 1, serial: 3),
        ])
        #expect(first.summary == IngestSummary(accepted: 2, duplicates: 1))
        harness.now = .seconds(1)
        let retry = harness.receive([
            TestSpans.span(trace: 1, id: 1, serial: 4), TestSpans.span(trace: 1, id: 2, parent: 1, serial: 5),
        ])
        #expect(retry.summary == IngestSummary(duplicates: 2))
        #expect(harness.state.stats.bufferedSpans == 2)
        #expect(harness.state.counters.duplicateSpans == 3)

        let released = harness.tick(at: 2)
        #expect(released.first?.spans.map(\.startTimeUnixNano) == [1, 2])
        // The same span id in another trace is not a duplicate.
        harness.now = .seconds(3)
        #expect(harness.receive([TestSpans.span(trace: 2, id: 1)]).summary.accepted == 1)
    }

    @Test func spansAfterReleaseAreLateFragmentsGroupedPerTrace() {
        var harness = Harness(configuration)
        let named = TestSpans.payload(experimentID: "3")
        harness.receive([TestSpans.span(trace: 1, id: 1, payload: named), TestSpans.span(trace: 2, id: 1)])
        #expect(harness.tick(at: 2).count == 2)

        harness.now = .seconds(5)
        let (summary, released) = harness.receive([
            TestSpans.span(trace: 1, id: 2, parent: 1),
            TestSpans.span(trace: 2, id: 2, parent: 1),
            TestSpans.span(trace: 9, id: 1),
            TestSpans.span(trace: 1, id: 3, parent: 2),
            TestSpans.span(trace: 1, id: 3, parent: 2),
        ])
        #expect(summary == IngestSummary(accepted: 1, duplicates: 1, late: 3))
        #expect(released.map(\.traceID.low) == [1, 2])
        #expect(released.allSatisfy { $0.reason == .late && $0.isLateFragment && !$0.isComplete })
        #expect(released.map(\.spanIDs) == [[2, 3], [2]])
        #expect(released.first?.experimentID == "3", "the experiment the trace was released with")
        #expect(harness.state.stats == AssemblerStats(bufferedTraces: 1, bufferedSpans: 1, bufferedBytes: 100))
        #expect(harness.state.counters.lateSpans == 3)
    }

    @Test func afterLateWindowSpansStartNewTrace() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 1)])
        #expect(harness.tick(at: 2).count == 1)
        #expect(harness.state.rememberedTraceCount == 1)

        harness.tick(at: 61.999)
        harness.now = .seconds(61.999)
        #expect(harness.receive([TestSpans.span(trace: 1, id: 2, parent: 1)]).summary.late == 1)

        #expect(harness.tick(at: 62).isEmpty)
        #expect(harness.state.rememberedTraceCount == 0)
        harness.now = .seconds(62)
        let (summary, released) = harness.receive([TestSpans.span(trace: 1, id: 3, parent: 1)])
        #expect(summary == IngestSummary(accepted: 1))
        #expect(released.isEmpty)
        // A new trace: open (its parent 1 went out with the first one), so released at max age.
        let final = harness.tick(at: 92)
        #expect(final.map(\.reason) == [.timeout])
        #expect(final.first?.spanIDs == [3])
    }

    @Test func flushedTracesAreRememberedForLateSpans() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 2, parent: 1)])
        #expect(harness.flush().map(\.reason) == [.shutdown])
        let (summary, released) = harness.receive([TestSpans.span(trace: 1, id: 1)])
        #expect(summary.late == 1)
        #expect(released.map(\.reason) == [.late])
    }
}
