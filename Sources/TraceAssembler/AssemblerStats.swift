/// What one `ingest` call did with its spans.
///
/// Every span of the call is counted in exactly one field.
public struct IngestSummary: Sendable, Equatable {
    /// Spans buffered into a (new or open) trace.
    public var accepted: Int
    /// Spans dropped because the trace already held a span with the same span id (first one wins).
    public var duplicates: Int
    /// Spans of an already released trace, released at once as late fragments (reason `late`).
    public var late: Int

    public init(accepted: Int = 0, duplicates: Int = 0, late: Int = 0) {
        self.accepted = accepted
        self.duplicates = duplicates
        self.late = late
    }
}

/// Buffer occupancy, for metrics and backpressure.
public struct AssemblerStats: Sendable, Equatable {
    /// Traces held (open, or closed and waiting for `idleTimeout`).
    public var bufferedTraces: Int
    /// Spans held across those traces (parts already released are not counted).
    public var bufferedSpans: Int
    /// Request bytes the held spans keep alive: `RequestPayload.bytes` of every payload that a held span
    /// points into, each payload once (a span keeps its whole payload alive, and the assembler moves spans
    /// that a payload outlives into a compact one). What `maxBufferedBytes` limits.
    public var bufferedBytes: Int

    public init(bufferedTraces: Int = 0, bufferedSpans: Int = 0, bufferedBytes: Int = 0) {
        self.bufferedTraces = bufferedTraces
        self.bufferedSpans = bufferedSpans
        self.bufferedBytes = bufferedBytes
    }
}

/// Running totals since the state machine was created; the source of the assembler's metrics.
public struct AssemblerCounters: Sendable, Equatable {
    /// Spans buffered (the sum of `IngestSummary.accepted`).
    public var acceptedSpans: Int = 0
    /// Spans dropped as duplicates (the sum of `IngestSummary.duplicates`).
    public var duplicateSpans: Int = 0
    /// Spans released as late fragments (the sum of `IngestSummary.late`).
    public var lateSpans: Int = 0
    /// `FinishedTrace` values handed out, per reason (a trace released in parts counts once per part).
    public var releasedTraces: [ReleaseReason: Int] = [:]
    /// Spans handed out, per reason.
    public var releasedSpans: [ReleaseReason: Int] = [:]
    /// Released trace ids forgotten before their `lateWindow` ended because the remembered set was
    /// full; a span arriving later for one of them starts a new trace instead of a late fragment.
    public var releasedIDsForgottenEarly: Int = 0
    /// Buffered spans moved out of a payload they were a small share of into a compact payload of their
    /// own (a span moved twice counts twice).
    public var compactedSpans: Int = 0
    /// Bytes of the compact payloads made for them: what those moves copied.
    public var compactedBytes: Int = 0

    public init() {}

    /// `FinishedTrace` values handed out, all reasons together.
    public var totalReleasedTraces: Int { releasedTraces.values.reduce(0, +) }

    /// Spans handed out, all reasons together.
    public var totalReleasedSpans: Int { releasedSpans.values.reduce(0, +) }
}
