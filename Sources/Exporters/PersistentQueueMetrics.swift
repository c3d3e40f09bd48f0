import Metrics

/// The queue's swift-metrics instruments, each with dimension `destination` = the queue's name.
/// (Sent, retried, dead-lettered and send latency are the sender's.)
struct PersistentQueueMetrics: Sendable {
    /// `stitch_queue_traces`: traces on disk not yet acknowledged.
    let queuedTraces: Gauge
    /// `stitch_queue_bytes`: their bytes on disk.
    let queuedBytes: Gauge
    /// `stitch_queue_oldest_age_seconds`: age of the oldest of them (0 when empty).
    let oldestAge: Gauge
    /// `stitch_queue_refused_traces_total`: traces not queued because the queue was full.
    let refused: Counter
    /// `stitch_queue_redelivered_traces_total`: traces handed out again after a restart although they
    /// had been handed out before it (possible duplicates at the destination).
    let redelivered: Counter
    /// `stitch_queue_corrupt_records_total`: torn or corrupt records found (each ends its segment).
    let corruptRecords: Counter
    /// `stitch_queue_lost_traces_total`: traces dropped because their record or a record before them
    /// in the same segment was corrupt.
    let lost: Counter

    init(destination: String, factory: any MetricsFactory) {
        let dimensions = [("destination", destination)]
        queuedTraces = Gauge(label: "stitch_queue_traces", dimensions: dimensions, factory: factory)
        queuedBytes = Gauge(label: "stitch_queue_bytes", dimensions: dimensions, factory: factory)
        oldestAge = Gauge(label: "stitch_queue_oldest_age_seconds", dimensions: dimensions, factory: factory)
        refused = Counter(label: "stitch_queue_refused_traces_total", dimensions: dimensions, factory: factory)
        redelivered = Counter(label: "stitch_queue_redelivered_traces_total", dimensions: dimensions, factory: factory)
        corruptRecords = Counter(label: "stitch_queue_corrupt_records_total", dimensions: dimensions, factory: factory)
        lost = Counter(label: "stitch_queue_lost_traces_total", dimensions: dimensions, factory: factory)
    }

    func report(_ stats: QueueStats, nowMs: Int64) {
        queuedTraces.record(stats.queuedTraces)
        queuedBytes.record(stats.queuedBytes)
        let ageMs = stats.oldestEnqueuedAtMs.map { max(0, nowMs - $0) } ?? 0
        oldestAge.record(Double(ageMs) / 1000)
    }
}
