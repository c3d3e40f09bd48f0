import Metrics
import TraceEdge

/// The assembler's swift-metrics instruments, fed from `AssemblerCounters` deltas so that the state
/// machine stays free of metrics.
struct AssemblerMetrics {
    private let acceptedSpans: Counter
    private let duplicateSpans: Counter
    private let lateSpans: Counter
    private let releasedTraces: [ReleaseReason: Counter]
    private let forgottenIDs: Counter
    private let compactedSpans: Counter
    private let compactedBytes: Counter
    private let bufferedTraces: Gauge
    private let bufferedSpans: Gauge
    private let bufferedBytes: Gauge
    /// The counters as last reported, to increment by the difference.
    private var reported = AssemblerCounters()
    private var reportedStats: AssemblerStats?

    init(factory: any MetricsFactory) {
        acceptedSpans = Counter(label: "stitch_spans_accepted_total", dimensions: [], factory: factory)
        duplicateSpans = Counter(label: "stitch_spans_duplicate_total", dimensions: [], factory: factory)
        lateSpans = Counter(label: "stitch_spans_late_total", dimensions: [], factory: factory)
        var released: [ReleaseReason: Counter] = [:]
        for reason in ReleaseReason.allCases {
            released[reason] = Counter(
                label: "stitch_traces_released_total", dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        releasedTraces = released
        forgottenIDs = Counter(label: "stitch_late_ids_forgotten_total", dimensions: [], factory: factory)
        compactedSpans = Counter(label: "stitch_spans_compacted_total", dimensions: [], factory: factory)
        compactedBytes = Counter(label: "stitch_compacted_bytes_total", dimensions: [], factory: factory)
        bufferedTraces = Gauge(label: "stitch_buffered_traces", dimensions: [], factory: factory)
        bufferedSpans = Gauge(label: "stitch_buffered_spans", dimensions: [], factory: factory)
        bufferedBytes = Gauge(label: "stitch_buffered_bytes", dimensions: [], factory: factory)
    }

    mutating func update(counters: AssemblerCounters, stats: AssemblerStats) {
        Self.add(counters.acceptedSpans - reported.acceptedSpans, to: acceptedSpans)
        Self.add(counters.duplicateSpans - reported.duplicateSpans, to: duplicateSpans)
        Self.add(counters.lateSpans - reported.lateSpans, to: lateSpans)
        Self.add(counters.releasedIDsForgottenEarly - reported.releasedIDsForgottenEarly, to: forgottenIDs)
        Self.add(counters.compactedSpans - reported.compactedSpans, to: compactedSpans)
        Self.add(counters.compactedBytes - reported.compactedBytes, to: compactedBytes)
        for (reason, count) in counters.releasedTraces {
            if let counter = releasedTraces[reason] {
                Self.add(count - reported.releasedTraces[reason, default: 0], to: counter)
            }
        }
        reported = counters
        if reportedStats != stats {
            bufferedTraces.record(stats.bufferedTraces)
            bufferedSpans.record(stats.bufferedSpans)
            bufferedBytes.record(stats.bufferedBytes)
            reportedStats = stats
        }
    }

    private static func add(_ delta: Int, to counter: Counter) {
        if delta > 0 { counter.increment(by: delta) }
    }
}
