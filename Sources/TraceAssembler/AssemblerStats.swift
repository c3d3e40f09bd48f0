import TraceEdge

/// What one `ingest` call did with its spans.
///
/// Every span of the call is counted in exactly one field.
package struct IngestSummary: Sendable, Equatable {
    /// Spans buffered into a (new or open) trace.
    package var accepted: Int
    /// Spans dropped because the trace already held a span with the same span id (first one wins).
    package var duplicates: Int
    /// Spans of an already released trace, released at once as late fragments (reason `late`).
    package var late: Int

    package init(accepted: Int = 0, duplicates: Int = 0, late: Int = 0) {
        self.accepted = accepted
        self.duplicates = duplicates
        self.late = late
    }
}

/// Buffer occupancy, for metrics and backpressure.
package struct AssemblerStats: Sendable, Equatable {
    /// Traces held (open, or closed and waiting for `idleTimeout`).
    package var bufferedTraces: Int
    /// Spans held across those traces (parts already released are not counted).
    package var bufferedSpans: Int
    /// Request bytes the held spans keep alive: `RequestPayload.bytes` of every payload that a held span
    /// points into, each payload once (a span keeps its whole payload alive, and the assembler moves spans
    /// that a payload outlives into a compact one). What `maxBufferedBytes` limits.
    package var bufferedBytes: Int

    package init(bufferedTraces: Int = 0, bufferedSpans: Int = 0, bufferedBytes: Int = 0) {
        self.bufferedTraces = bufferedTraces
        self.bufferedSpans = bufferedSpans
        self.bufferedBytes = bufferedBytes
    }
}

/// Running totals since the state machine was created; the source of the assembler's metrics.
package struct AssemblerCounters: Sendable, Equatable {
    /// Spans buffered (the sum of `IngestSummary.accepted`).
    package var acceptedSpans: Int = 0
    /// Spans dropped as duplicates (the sum of `IngestSummary.duplicates`).
    package var duplicateSpans: Int = 0
    /// Spans released as late fragments (the sum of `IngestSummary.late`).
    package var lateSpans: Int = 0
    /// `FinishedTrace` values handed out, per reason (a trace released in parts counts once per part).
    package var releasedTraces: [ReleaseReason: Int] = [:]
    /// Spans handed out, per reason.
    package var releasedSpans: [ReleaseReason: Int] = [:]
    /// Released trace ids forgotten before their `lateWindow` ended because the remembered set was
    /// full; a span arriving later for one of them starts a new trace instead of a late fragment.
    package var releasedIDsForgottenEarly: Int = 0
    /// Buffered spans moved out of a payload they were a small share of into a compact payload of their
    /// own (a span moved twice counts twice).
    package var compactedSpans: Int = 0
    /// Bytes of the compact payloads made for them: what those moves copied.
    package var compactedBytes: Int = 0

    package init() {}

    /// `FinishedTrace` values handed out, all reasons together.
    package var totalReleasedTraces: Int { releasedTraces.values.reduce(0, +) }

    /// Spans handed out, all reasons together.
    package var totalReleasedSpans: Int { releasedSpans.values.reduce(0, +) }
}
