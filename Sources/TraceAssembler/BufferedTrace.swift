import OTLPWire
import TraceEdge

/// One trace held by `AssemblerState`: its buffered spans plus what is needed to decide, without
/// rescanning, whether it is closed (DESIGN.md, "When is a trace finished?").
///
/// The span-id set and the closure facts outlive parts released as `too_large`, so that later spans
/// are still checked against every span the trace ever had (parents and duplicates).
struct BufferedTrace {
    /// Spans not yet released, in arrival order.
    var spans: [SpanRecord]
    /// The payload of the last span appended, to tell `HeldPayloads` once (not per span) that this trace
    /// holds spans of a payload; nil when `spans` is empty.
    var lastPayload: ObjectIdentifier?
    /// Every span id this trace has accepted, including spans of parts already released.
    var spanIDs: SpanIDSet
    /// Parent ids referenced by accepted spans but not (yet) among `spanIDs`.
    var missingParents: SpanIDSet
    /// Whether a span without a parent has arrived.
    var hasRoot: Bool
    /// When the first span arrived (time since the state's origin); `maxTraceAge` counts from here.
    let firstSeen: Duration
    /// Unique among all traces ever buffered; tells a current age-queue entry from a stale one
    /// left by an earlier trace with the same id.
    let incarnation: UInt64
    /// The stamp of this trace's current idle-queue entry; 0 when it has none (not closed).
    var idleStamp: UInt64 = 0
    /// The `receive` call that last touched this trace, so that it is listed once per call.
    var touchedInCall: UInt64 = 0
    /// The experiment of the first root span that names one: its `mlflow.experimentId` attribute,
    /// else its request's `x-mlflow-experiment-id`.
    var rootExperimentID: String?
    /// The experiment named by the first request (of any span) that named one.
    var firstExperimentID: String?

    init(firstSeen: Duration, incarnation: UInt64) {
        self.spans = []
        self.spanIDs = SpanIDSet()
        self.missingParents = SpanIDSet()
        self.hasRoot = false
        self.firstSeen = firstSeen
        self.incarnation = incarnation
    }

    /// Has a root and every referenced parent.
    var isClosed: Bool { hasRoot && missingParents.isEmpty }

    /// The root's experiment (attribute, else its request's header), else the first one a request
    /// named (FinishedTrace.experimentID).
    var experimentID: String? { rootExperimentID ?? firstExperimentID }

    /// Records `span`'s ids and updates closure. Returns false, changing nothing, when the trace already
    /// has a span with this id (a duplicate: the first one wins).
    mutating func register(_ span: SpanRecord) -> Bool {
        guard spanIDs.insert(span.spanID) else { return false }
        if !missingParents.isEmpty { missingParents.remove(span.spanID) }
        if span.isRoot {
            hasRoot = true
            // The trace's own statement beats its exporter's process-wide header (README, "Experiments").
            if rootExperimentID == nil { rootExperimentID = span.experimentIDAttribute ?? span.payload.experimentID }
        } else if !spanIDs.contains(span.parentSpanID) {
            _ = missingParents.insert(span.parentSpanID)
        }
        if firstExperimentID == nil { firstExperimentID = span.payload.experimentID }
        return true
    }

    /// Buffers a span already accepted by `register`. Returns whether the trace had no span of this
    /// span's payload just before (it may have some from before another payload's spans).
    mutating func append(_ span: SpanRecord) -> Bool {
        // Most traces have several spans: skip the first doublings of the array.
        if spans.capacity == 0 { spans.reserveCapacity(8) }
        spans.append(span)
        let payload = ObjectIdentifier(span.payload)
        guard payload != lastPayload else { return false }
        lastPayload = payload
        return true
    }

    /// Hands out the buffered spans, keeping the ids and closure facts.
    mutating func takeSpans() -> [SpanRecord] {
        let taken = spans
        spans = []
        // The payload may be freed now and its address reused by another.
        lastPayload = nil
        return taken
    }
}
