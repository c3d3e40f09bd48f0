import OTLPWire

/// Why the assembler let a trace (or a part of one) go.
package enum ReleaseReason: String, Sendable, CaseIterable, Codable {
    /// Has a root and every parent; quiet for `idle_timeout`.
    case closed
    /// Reached `max_trace_age` without closing.
    case timeout
    /// Released early because `max_traces` or `max_buffered_bytes` was reached.
    case evicted
    /// A part of a trace over `max_spans_per_trace`.
    case tooLarge = "too_large"
    /// Released because the process is stopping.
    case shutdown
    /// Spans of a trace that was already released (within `late_window`).
    case late
}

/// The edge type between the assembler and its sinks: a released trace, or a late fragment of one.
package struct FinishedTrace: Sendable {
    package var traceID: TraceID
    /// Deduplicated (trace id + span id kept once), in arrival order.
    package var spans: [SpanRecord]
    package var reason: ReleaseReason
    /// True when the released spans had a root and every parent was present (the trace was closed).
    package var isComplete: Bool
    /// The experiment the root span names in its `mlflow.experimentId` attribute, else the one its
    /// request named (`x-mlflow-experiment-id`), else the first one any request of the trace named;
    /// nil when nothing named one (the destination's default applies).
    package var experimentID: String?

    package init(traceID: TraceID, spans: [SpanRecord], reason: ReleaseReason, isComplete: Bool, experimentID: String?) {
        self.traceID = traceID
        self.spans = spans
        self.reason = reason
        self.isComplete = isComplete
        self.experimentID = experimentID
    }

    /// `reason == .late`: to be merged into a trace the destination already has.
    package var isLateFragment: Bool { reason == .late }

    package var encodedBytes: Int { spans.reduce(0) { $0 + $1.encodedSize } }
}

/// The one edge protocol between the assembler and what it feeds: the store, a disk queue, a test fake.
package protocol TraceSink: Sendable {
    func consume(_ traces: [FinishedTrace]) async throws
}
