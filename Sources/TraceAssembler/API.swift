// CONTRACT STUBS — replaced by the real implementation (TraceAssembler helper). Signatures are the contract.
import Logging
import Metrics
import OTLPWire

/// What one `ingest` call did with its spans.
public struct IngestSummary: Sendable, Equatable {
    public var accepted: Int
    public var duplicates: Int
    public var late: Int
    public init(accepted: Int = 0, duplicates: Int = 0, late: Int = 0) {
        self.accepted = accepted
        self.duplicates = duplicates
        self.late = late
    }
}

/// Buffer occupancy, for metrics and backpressure.
public struct AssemblerStats: Sendable, Equatable {
    public var bufferedTraces: Int
    public var bufferedSpans: Int
    public var bufferedBytes: Int
    public init(bufferedTraces: Int = 0, bufferedSpans: Int = 0, bufferedBytes: Int = 0) {
        self.bufferedTraces = bufferedTraces
        self.bufferedSpans = bufferedSpans
        self.bufferedBytes = bufferedBytes
    }
}

/// The state machine inside one actor, driven by an injected clock.
public actor TraceAssembler<C: Clock> where C.Duration == Duration {
    public init(
        configuration: AssemblerConfiguration,
        clock: C,
        tickInterval: Duration = .milliseconds(100),
        logger: Logger,
        metrics: any MetricsFactory,
        release: @escaping @Sendable ([FinishedTrace]) -> Void
    ) {}

    /// Buffers spans; releases (late fragments, evictions, parts) may be handed to `release` at once.
    public func ingest(_ spans: [SpanRecord]) -> IngestSummary { IngestSummary() }

    /// Applies the timers now.
    public func tick() {}

    /// Releases everything buffered with reason `shutdown`.
    public func flush() {}

    public var stats: AssemblerStats { AssemblerStats() }

    /// Ticks every `tickInterval` until the task is cancelled, then returns (the caller flushes).
    public func run() async {}
}
