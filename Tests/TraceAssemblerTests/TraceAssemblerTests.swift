import Logging
import OTLPWire
import Synchronization
import StitchTestSupport
import Testing
@testable import TraceAssembler
import TraceEdge

/// The actor around `AssemblerState`: injected clock, release closure, metrics, run loop.
@Suite struct TraceAssemblerTests {
    final class Released: Sendable {
        let traces = Mutex<[FinishedTrace]>([])
        var all: [FinishedTrace] { traces.withLock { $0 } }
        func append(_ released: [FinishedTrace]) { traces.withLock { $0 += released } }
    }

    func makeAssembler(
        clock: ManualClock, metrics: RecordingMetrics, released: Released
    ) -> TraceAssembler<ManualClock> {
        TraceAssembler(
            configuration: AssemblerConfiguration(idleTimeout: .seconds(2), maxTraceAge: .seconds(30)),
            clock: clock, tickInterval: .seconds(1), logger: Logger(label: "test"), metrics: metrics,
            release: { released.append($0) })
    }

    @Test func releasesWhenClockAdvancesAndReportsMetrics() async {
        let clock = ManualClock()
        let metrics = RecordingMetrics()
        let released = Released()
        let assembler = makeAssembler(clock: clock, metrics: metrics, released: released)

        let summary = await assembler.ingest([
            TestSpans.span(trace: 1, id: 1, size: 120), TestSpans.span(trace: 1, id: 2, parent: 1, size: 80),
            TestSpans.span(trace: 1, id: 2, parent: 1),
        ])
        #expect(summary == IngestSummary(accepted: 2, duplicates: 1))
        #expect(await assembler.stats == AssemblerStats(bufferedTraces: 1, bufferedSpans: 2, bufferedBytes: 200))
        #expect(metrics["stitch_buffered_bytes"] == 200)
        #expect(metrics["stitch_spans_accepted_total"] == 2)
        #expect(metrics["stitch_spans_duplicate_total"] == 1)

        clock.advance(by: .milliseconds(1999))
        await assembler.tick()
        #expect(released.all.isEmpty)
        clock.advance(by: .milliseconds(1))
        await assembler.tick()
        #expect(released.all.map(\.reason) == [.closed])
        #expect(released.all.first?.spanIDs == [1, 2])
        #expect(metrics["stitch_traces_released_total{reason=closed}"] == 1)
        #expect(metrics["stitch_buffered_traces"] == 0)

        // A late span goes out during the ingest call itself.
        #expect(await assembler.ingest([TestSpans.span(trace: 1, id: 3, parent: 1)]).late == 1)
        #expect(released.all.map(\.reason) == [.closed, .late])
        #expect(metrics["stitch_spans_late_total"] == 1)
        #expect(metrics["stitch_traces_released_total{reason=late}"] == 1)

        _ = await assembler.ingest([TestSpans.span(trace: 2, id: 5, parent: 4)])
        await assembler.flush()
        #expect(released.all.map(\.reason) == [.closed, .late, .shutdown])
        #expect(await assembler.stats == AssemblerStats())
    }

    @Test func runTicksOnTheClockUntilCancelled() async {
        let clock = ManualClock()
        let released = Released()
        let assembler = makeAssembler(clock: clock, metrics: RecordingMetrics(), released: released)
        _ = await assembler.ingest([TestSpans.span(trace: 1, id: 1)])

        let running = Task { await assembler.run() }
        await clock.waitForSleepers(1)
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers(1)  // Ticked at t = 1 s and went back to sleep.
        #expect(released.all.isEmpty)
        clock.advance(by: .seconds(1))
        await clock.waitForSleepers(1)  // Ticked at t = 2 s: idle for 2 s.
        #expect(released.all.map(\.reason) == [.closed])

        running.cancel()
        await running.value  // run() returns once cancelled.
        #expect(clock.sleeperCount == 0)
    }
}
