import Logging
import TraceEdge
import Metrics
import OTLPWire

/// The assembler stage: `AssemblerState` inside one actor, driven by an injected clock.
///
/// Releases are handed to the `release` closure synchronously, on the actor, in the order decided;
/// the closure should only enqueue (it runs while the actor is busy).
///
/// Metrics (created with the injected factory): counters `stitch_spans_accepted_total`,
/// `stitch_spans_duplicate_total`, `stitch_spans_late_total`, `stitch_traces_released_total{reason}`,
/// `stitch_late_ids_forgotten_total`, `stitch_spans_compacted_total`, `stitch_compacted_bytes_total`;
/// gauges `stitch_buffered_traces`, `stitch_buffered_spans`, `stitch_buffered_bytes` (request bytes the
/// buffered spans keep alive, `AssemblerStats.bufferedBytes`).
package actor TraceAssembler<C: Clock> where C.Duration == Duration {
    private var state: AssemblerState<C.Instant>
    private let clock: C
    private let tickInterval: Duration
    private let logger: Logger
    private var metrics: AssemblerMetrics
    private let release: @Sendable ([FinishedTrace]) -> Void

    package init(
        configuration: AssemblerConfiguration,
        clock: C,
        tickInterval: Duration = .milliseconds(100),
        logger: Logger,
        metrics: any MetricsFactory,
        release: @escaping @Sendable ([FinishedTrace]) -> Void
    ) {
        self.state = AssemblerState(configuration: configuration)
        self.clock = clock
        self.tickInterval = tickInterval
        self.logger = logger
        self.metrics = AssemblerMetrics(factory: metrics)
        self.release = release
    }

    /// Buffers spans; releases (late fragments, evictions, parts) may be handed to `release` at once.
    package func ingest(_ spans: [SpanRecord]) -> IngestSummary {
        let (summary, releases) = state.receive(spans, now: clock.now)
        hand(releases)
        return summary
    }

    /// Applies the timers now.
    package func tick() {
        hand(state.tick(now: clock.now))
    }

    /// Releases everything buffered with reason `shutdown`.
    package func flush() {
        hand(state.flush(now: clock.now))
    }

    package var stats: AssemblerStats { state.stats }

    /// Running totals since start.
    package var counters: AssemblerCounters { state.counters }

    /// Ticks every `tickInterval` until the task is cancelled, then returns (the caller flushes).
    package func run() async {
        while !Task.isCancelled {
            do {
                try await clock.sleep(for: tickInterval)
            } catch {
                return  // Cancelled while sleeping.
            }
            tick()
        }
    }

    private func hand(_ releases: [FinishedTrace]) {
        metrics.update(counters: state.counters, stats: state.stats)
        guard !releases.isEmpty else { return }
        if logger.logLevel <= .debug {
            for trace in releases {
                logger.debug("released trace", metadata: [
                    "trace.id": "\(trace.traceID.hex)",
                    "trace.release_reason": "\(trace.reason.rawValue)",
                    "trace.complete": "\(trace.isComplete)",
                    "trace.span_count": "\(trace.spans.count)",
                ])
            }
        }
        release(releases)
    }
}
