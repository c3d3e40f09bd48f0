import Foundation
import Logging
import Metrics
import Synchronization
import TraceAssembler

/// Append-only segment files with checksummed records. A segment is deleted only once every record
/// in it is acknowledged (delivered or dead-lettered). After a restart, reading resumes after the
/// last acknowledged record (at-least-once: a record delivered but not yet acknowledged when the
/// process died is sent again, and counted).
///
/// One queue per destination, in its own directory:
/// - `segment-<first sequence>.stq`: records, format in `QueueRecord`; a new segment starts when the
///   open one would grow past `segmentBytes`.
/// - `acknowledged.mark`: the acknowledgement watermark, replaced atomically (fsync per policy).
/// - `handed-out.mark`: the last sequence handed to the reader (not synced), to count redeliveries.
///
/// All file I/O is synchronous and happens under the queue's lock: call `append`, `acknowledge` and
/// the initializer off event loops. `next` only waits asynchronously. One reader at a time: it
/// acknowledges, in order, what `next` handed out.
public final class PersistentQueue: Sendable {
    /// The destination's name (the `destination` dimension of the metrics).
    public let name: String
    public let configuration: PersistentQueueConfiguration
    private let core: Mutex<QueueCore>
    private let now: @Sendable () -> Int64

    public convenience init(
        name: String, configuration: PersistentQueueConfiguration, logger: Logger, metrics: any MetricsFactory
    ) throws {
        try self.init(name: name, configuration: configuration, logger: logger, metrics: metrics,
                      now: PersistentQueue.wallClockMilliseconds)
    }

    /// Opens (or creates) the queue in `configuration.directory` and recovers what is on disk.
    /// - Parameter now: wall-clock time in milliseconds since 1970 (append times, oldest-age gauge).
    public init(
        name: String, configuration: PersistentQueueConfiguration, logger: Logger, metrics: any MetricsFactory,
        now: @escaping @Sendable () -> Int64
    ) throws {
        let problems = configuration.problems
        guard problems.isEmpty else {
            throw QueueError("queue \(name): invalid configuration: " + problems.joined(separator: "; "))
        }
        var logger = logger
        logger[metadataKey: "destination"] = "\(name)"
        let metrics = PersistentQueueMetrics(destination: name, factory: metrics)
        let recovered = try QueueRecovery(
            directory: configuration.directory, configuration: configuration, logger: logger, metrics: metrics
        ).recover()
        self.name = name
        self.configuration = configuration
        self.now = now
        let core = QueueCore(
            directory: configuration.directory, fsync: configuration.fsync, logger: logger, metrics: metrics,
            ledger: recovered.ledger, redeliverThrough: recovered.handedOut, handedOutMark: recovered.handedOut)
        core.reportMetrics(nowMs: now())
        self.core = Mutex(core)
    }

    deinit {
        _ = core.withLock { $0.close() }
    }

    public static let wallClockMilliseconds: @Sendable () -> Int64 = {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// Appends (and, per policy, fsyncs). Returns how many traces were refused because the queue is full
    /// (the oldest data is kept; refused traces are counted in metrics).
    ///
    /// The traces that fit are written with one write (and one fsync) for the whole call.
    @discardableResult
    public func append(_ traces: [FinishedTrace]) throws -> Int {
        guard !traces.isEmpty else { return 0 }
        // Encoding is the costly part: done before taking the lock.
        let prepared = traces.map(QueueRecord.Prepared.init)
        let nowMs = now()
        let (refused, waiters) = try core.withLock { core throws(QueueError) in
            let refused = try core.append(prepared, nowMs: nowMs)
            core.reportMetrics(nowMs: nowMs)
            return (refused, refused < prepared.count ? core.takeWaiters() : [])
        }
        for waiter in waiters { waiter.resume() }
        return refused
    }

    /// True while the queue is at its byte limit (or refused a trace since bytes were last freed).
    public var isFull: Bool { core.withLock { $0.ledger.isFull } }

    /// Waits for records after those already handed out; nil once `close()` was called (what is
    /// left stays on disk for the next start) or when the calling task is cancelled.
    ///
    /// Returns at most `maxTraces` traces and at most `maxBytes` bytes of records, but always at least
    /// one trace (a trace bigger than `maxBytes` comes alone).
    public func next(maxTraces: Int, maxBytes: Int) async -> [QueuedTrace]? {
        precondition(maxTraces > 0, "maxTraces must be positive")
        while true {
            enum Step { case batch([QueuedTrace]), closed, wait(appends: UInt64) }
            let step = core.withLock { core -> Step in
                if core.closed { return .closed }
                let batch = core.readBatch(maxTraces: maxTraces, maxBytes: maxBytes)
                core.reportMetrics(nowMs: now())
                return batch.isEmpty ? .wait(appends: core.appends) : .batch(batch)
            }
            switch step {
            case .closed:
                return nil
            case .batch(let batch):
                return batch
            case .wait(let appends):
                guard await waitForAppend(after: appends) else { return nil }
            }
        }
    }

    /// Suspends until the append after the `appends`th, or `close()`; false when the task was cancelled.
    private func waitForAppend(after appends: UInt64) async -> Bool {
        let id = core.withLock { core in
            defer { core.nextWaiterID += 1 }
            return core.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = core.withLock { core -> Bool in
                    // Checked under the lock, so an append or a cancellation cannot slip in between.
                    if core.closed || core.appends != appends || Task.isCancelled { return true }
                    core.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            core.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
        return !Task.isCancelled
    }

    /// Everything up to and including `sequence` is done; fully acknowledged segments are deleted.
    /// Throws when `sequence` lies beyond what was handed out, or the watermark cannot be written.
    public func acknowledge(through sequence: UInt64) throws {
        try core.withLock { core throws(QueueError) in
            try core.acknowledge(through: sequence)
            core.reportMetrics(nowMs: now())
        }
    }

    public var stats: QueueStats { core.withLock { $0.ledger.stats } }

    /// Queued traces not handed out yet.
    var unreadTraces: Int { core.withLock { $0.ledger.unreadTraces } }

    /// Readers suspended in `next`.
    var waitingReaders: Int { core.withLock { $0.waiters.count } }

    /// Updates the gauges (the oldest item's age grows while nothing happens): call periodically.
    public func refreshMetrics() {
        core.withLock { $0.reportMetrics(nowMs: now()) }
    }

    public func close() {
        let waiters = core.withLock { $0.close() }
        for waiter in waiters { waiter.resume() }
    }
}
