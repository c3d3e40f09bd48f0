import Logging
import Metrics
import TraceEdge

/// What every store's `consume` does around its database write: the batch converted to rows (what
/// could not be converted logged), the write timed and counted, a failed write counted, logged and
/// thrown. The metrics are the same for every backend: `stitch_store_write_seconds`,
/// `stitch_store_traces_written_total`, `stitch_store_spans_written_total`,
/// `stitch_store_write_errors_total`.
package struct StoreInstruments: Sendable {
    /// What a write did.
    package struct Written: Sendable {
        package var tracesInserted: Int
        package var tracesMerged: Int
        package var spans: Int
        /// Merged traces whose release was not a late fragment nor a part of a large trace: another
        /// instance (a former owner, in a cluster) or an earlier release had stored part of them.
        package var tracesSplit: Int
        package init(tracesInserted: Int, tracesMerged: Int, spans: Int, tracesSplit: Int = 0) {
            self.tracesInserted = tracesInserted
            self.tracesMerged = tracesMerged
            self.spans = spans
            self.tracesSplit = tracesSplit
        }

        /// Whether a release that merges into a stored trace means the trace was split.
        package static func isSplit(_ reason: ReleaseReason) -> Bool { reason != .late && reason != .tooLarge }
    }

    private let writeTimer: Metrics.Timer
    private let tracesWritten: Counter
    private let spansWritten: Counter
    private let writeErrors: Counter
    private let splitTraces: Counter

    package init(metrics: any MetricsFactory) {
        writeTimer = Metrics.Timer(label: "stitch_store_write_seconds", factory: metrics)
        tracesWritten = Counter(label: "stitch_store_traces_written_total", factory: metrics)
        spansWritten = Counter(label: "stitch_store_spans_written_total", factory: metrics)
        writeErrors = Counter(label: "stitch_store_write_errors_total", factory: metrics)
        splitTraces = Counter(label: "stitch_cluster_split_traces_total", factory: metrics)
    }

    /// Prepares `traces` and hands them to `write` (which runs the database's transaction).
    /// - Parameters:
    ///   - location: the store as logs name it (never with a password).
    ///   - describe: the error as the log line shows it.
    package func consume(_ traces: [FinishedTrace], logger: Logger, location: String,
                         describe: (any Error) -> String = { "\($0)" },
                         write: ([PreparedTrace]) async throws -> Written) async throws {
        guard !traces.isEmpty else { return }
        let started = ContinuousClock.now
        let batch = PreparedBatch(traces)
        for problem in batch.problems {
            logger.log(level: problem.spansLeftOut ? .error : .warning, "\(problem.message)",
                       metadata: problem.metadata.mapValues { .string($0) })
        }
        do {
            let written = try await write(batch.traces)
            tracesWritten.increment(by: written.tracesInserted + written.tracesMerged)
            spansWritten.increment(by: written.spans)
            if written.tracesSplit > 0 { splitTraces.increment(by: written.tracesSplit) }
            let (seconds, attoseconds) = (ContinuousClock.now - started).components
            writeTimer.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
            logger.debug("stored traces", metadata: [
                "traces.inserted": "\(written.tracesInserted)", "traces.merged": "\(written.tracesMerged)",
                "spans": "\(written.spans)",
            ])
        } catch {
            writeErrors.increment()
            logger.error("writing traces to the store failed", metadata: [
                "error": "\(describe(error))", "traces": "\(traces.count)", "store": "\(location)",
            ])
            throw error
        }
    }
}
