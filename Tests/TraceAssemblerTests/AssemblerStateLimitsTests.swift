import OTLPWire
import Testing
@testable import TraceAssembler
import TraceEdge

/// `maxSpansPerTrace` parts, eviction by `maxTraces` / `maxBufferedBytes`, and boundedness.
@Suite struct AssemblerStateLimitsTests {
    @Test func oversizedTraceIsReleasedInPartsThenWhole() {
        var harness = Harness(AssemblerConfiguration(idleTimeout: .seconds(2), maxSpansPerTrace: 3))
        let named = TestSpans.payload(experimentID: "42")
        let first = harness.receive([
            TestSpans.span(trace: 1, id: 1, payload: named),
            TestSpans.span(trace: 1, id: 2, parent: 1),
            TestSpans.span(trace: 1, id: 3, parent: 1),
            TestSpans.span(trace: 1, id: 4, parent: 1),
        ])
        #expect(first.summary.accepted == 4)
        #expect(first.released.map(\.spanIDs) == [[1, 2, 3]])
        #expect(first.released.first?.reason == .tooLarge)
        #expect(first.released.first?.isComplete == false)
        #expect(first.released.first?.experimentID == "42")
        #expect(harness.state.stats == AssemblerStats(bufferedTraces: 1, bufferedSpans: 1, bufferedBytes: 100))

        harness.now = .seconds(1)
        let second = harness.receive([
            TestSpans.span(trace: 1, id: 5, parent: 4),
            TestSpans.span(trace: 1, id: 6, parent: 5),
            TestSpans.span(trace: 1, id: 7, parent: 6),
            // Already released in the first part: still a duplicate.
            TestSpans.span(trace: 1, id: 2, parent: 1),
        ])
        #expect(second.summary == IngestSummary(accepted: 3, duplicates: 1))
        #expect(second.released.map(\.spanIDs) == [[4, 5, 6]])

        // Parent 1 went out in the first part; the trace is still closed.
        harness.now = .seconds(1.5)
        harness.receive([TestSpans.span(trace: 1, id: 8, parent: 1)])
        #expect(harness.tick(at: 3.4).isEmpty)
        let final = harness.tick(at: 3.5)
        #expect(final.map(\.spanIDs) == [[7, 8]])
        #expect(final.first?.reason == .closed)
        #expect(final.first?.isComplete == true, "the whole trace, all parts, is closed")
        #expect(final.first?.experimentID == "42")
        #expect(harness.state.stats == AssemblerStats())
    }

    @Test func traceOfExactlyMaxSpansIsNotSplit() {
        var harness = Harness(AssemblerConfiguration(idleTimeout: .seconds(2), maxSpansPerTrace: 3))
        let (_, released) = harness.receive([
            TestSpans.span(trace: 1, id: 1), TestSpans.span(trace: 1, id: 2, parent: 1),
            TestSpans.span(trace: 1, id: 3, parent: 1),
        ])
        #expect(released.isEmpty)
        #expect(harness.tick(at: 2).map(\.spanIDs) == [[1, 2, 3]])
    }

    @Test func oversizedTraceWithoutRootEndsWithIncompleteTimeout() {
        var harness = Harness(AssemblerConfiguration(maxTraceAge: .seconds(30), maxSpansPerTrace: 2))
        harness.receive((2...6).map { TestSpans.span(trace: 1, id: $0, parent: 1) })
        #expect(harness.releases.map(\.reason) == [.tooLarge, .tooLarge])
        let final = harness.tick(at: 30)
        #expect(final.map(\.spanIDs) == [[6]])
        #expect(final.first?.reason == .timeout)
        #expect(final.first?.isComplete == false)
    }

    @Test func evictsOldestTracesOverMaxTraces() {
        var harness = Harness(AssemblerConfiguration(idleTimeout: .seconds(100), maxTraces: 3))
        // Trace 1 is closed but still waiting for idleness; 2 and 3 are open.
        harness.receive([TestSpans.span(trace: 1, id: 1)])
        harness.now = .seconds(1)
        harness.receive([TestSpans.span(trace: 2, id: 2, parent: 1)])
        harness.now = .seconds(2)
        harness.receive([TestSpans.span(trace: 3, id: 2, parent: 1)])
        // Activity does not make a trace younger: order is by first span.
        harness.now = .seconds(2.5)
        harness.receive([TestSpans.span(trace: 1, id: 2, parent: 1)])
        #expect(harness.releases.isEmpty)

        harness.now = .seconds(3)
        let one = harness.receive([TestSpans.span(trace: 4, id: 1)])
        #expect(one.released.map(\.traceID.low) == [1])
        #expect(one.released.first?.reason == .evicted)
        #expect(one.released.first?.isComplete == true)
        #expect(one.released.first?.spanIDs == [1, 2])

        harness.now = .seconds(4)
        let two = harness.receive([TestSpans.span(trace: 5, id: 1), TestSpans.span(trace: 6, id: 1)])
        #expect(two.released.map(\.traceID.low) == [2, 3])
        #expect(two.released.allSatisfy { $0.reason == .evicted && !$0.isComplete })
        #expect(harness.state.stats.bufferedTraces == 3)

        // Evicted ids are remembered like any release.
        let late = harness.receive([TestSpans.span(trace: 2, id: 1)])
        #expect(late.summary.late == 1)
        #expect(late.released.map(\.reason) == [.late])
    }

    @Test func evictsOldestTracesOverMaxBufferedBytes() {
        var harness = Harness(AssemblerConfiguration(maxBufferedBytes: 1000))
        harness.receive([TestSpans.span(trace: 1, id: 1, size: 300), TestSpans.span(trace: 1, id: 2, parent: 1, size: 300)])
        harness.now = .seconds(1)
        harness.receive([TestSpans.span(trace: 2, id: 1, size: 300)])
        #expect(harness.state.stats.bufferedBytes == 900)
        #expect(harness.releases.isEmpty)

        harness.now = .seconds(2)
        let first = harness.receive([TestSpans.span(trace: 3, id: 1, size: 300)])
        #expect(first.released.map(\.traceID.low) == [1])
        #expect(first.released.first?.reason == .evicted)
        #expect(harness.state.stats == AssemblerStats(bufferedTraces: 2, bufferedSpans: 2, bufferedBytes: 600))

        // One big span: released oldest first until under the limit, no further.
        harness.now = .seconds(3)
        let second = harness.receive([TestSpans.span(trace: 4, id: 1, size: 900)])
        #expect(second.released.map(\.traceID.low) == [2, 3])
        #expect(harness.state.stats == AssemblerStats(bufferedTraces: 1, bufferedSpans: 1, bufferedBytes: 900))
    }

    @Test func timerQueuesStayBoundedUnderChurn() {
        var harness = Harness(AssemblerConfiguration(idleTimeout: .seconds(2), maxTraceAge: .seconds(3600)))
        harness.receive([TestSpans.span(trace: 1, id: 1)])
        // One closed trace touched by many calls within its idle time: each call queues an idle deadline.
        for index in 2...20_000 {
            harness.receive([TestSpans.span(trace: 1, id: UInt64(index), parent: 1)])
        }
        #expect(harness.state.queuedTimers.idle <= 2 * 1 + 1024 + 1)
        // Many short traces released when idle leave stale age entries behind (their age deadline
        // is an hour away).
        var churn = Harness(AssemblerConfiguration(idleTimeout: .seconds(1), maxTraceAge: .seconds(3600)))
        for trace in 1...5_000 {
            churn.now = .seconds(Double(trace) * 2)
            churn.receive([TestSpans.span(trace: UInt64(trace), id: 1)])
            churn.tick(at: Double(trace) * 2 + 1)
        }
        #expect(churn.releases.count == 5_000)
        #expect(churn.state.stats == AssemblerStats())
        #expect(churn.state.queuedTimers.age <= 2 * 1 + 1024, "compacted: without it, one entry per trace")
        #expect(churn.state.queuedTimers.idle <= 1)
    }

    @Test func storageGrownByABurstIsGivenBackOnceNothingIsBuffered() {
        var harness = Harness(AssemblerConfiguration(idleTimeout: .seconds(1), maxTraceAge: .seconds(60)))
        harness.receive((1...10_000).map { TestSpans.span(trace: UInt64($0), id: 1) })
        #expect(harness.state.tableCapacity >= 10_000)
        // One trace still buffered (no root yet, waits for its age): the storage stays.
        harness.receive([TestSpans.span(trace: 20_000, id: 2, parent: 1)])
        harness.tick(at: 2)
        #expect(harness.releases.count == 10_000)
        #expect(harness.state.tableCapacity >= 10_000)
        // The last one released: back to small, every timer gone.
        harness.tick(at: 61)
        #expect(harness.state.stats == AssemblerStats())
        #expect(harness.state.tableCapacity <= AssemblerCore.capacityKeptWhenEmpty)
        #expect(harness.state.queuedTimers == (0, 0))
        // It keeps working: a released trace's span is late, a new trace is buffered and released.
        harness.now = .seconds(62)
        let late = harness.receive([TestSpans.span(trace: 7, id: 2, parent: 1), TestSpans.span(trace: 30_000, id: 1)])
        #expect(late.released.map(\.reason) == [.late])
        harness.tick(at: 64)
        #expect(harness.releases.last?.traceID.low == 30_000)
        #expect(harness.state.stats == AssemblerStats())
    }

    @Test func rememberedIDsAreCappedAtFourTimesMaxTraces() {
        var harness = Harness(AssemblerConfiguration(maxTraces: 2))
        for trace in 1...10 {
            harness.receive([TestSpans.span(trace: UInt64(trace), id: 1)])
        }
        harness.flush()
        #expect(harness.state.rememberedTraceCount == 8)
        #expect(harness.state.counters.releasedIDsForgottenEarly == 2)
        // The two oldest were forgotten: their spans start new traces; the third is still late.
        let (summary, released) = harness.receive([
            TestSpans.span(trace: 1, id: 2), TestSpans.span(trace: 2, id: 2), TestSpans.span(trace: 3, id: 2),
        ])
        #expect(summary == IngestSummary(accepted: 2, late: 1))
        #expect(released.map(\.traceID.low) == [3])
    }

    @Test func configurationProblemsNameEachOption() {
        #expect(AssemblerConfiguration().problems.isEmpty)
        let bad = AssemblerConfiguration(
            idleTimeout: .zero, maxTraceAge: .seconds(-1), maxSpansPerTrace: 0, maxTraces: 0,
            maxBufferedBytes: 0, lateWindow: .seconds(-1))
        let problems = bad.problems
        #expect(Set(problems.map(\.key)) == ["idle_timeout", "max_trace_age", "max_spans_per_trace", "max_traces", "max_buffered_bytes", "late_window"])
        #expect(problems.allSatisfy { !$0.reason.isEmpty })
    }
}
