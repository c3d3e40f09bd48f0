import Foundation
import Logging
import Metrics
import Synchronization
import TraceEdge

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
/// All file I/O (appends and their fsync, reads, acknowledgements) runs on the queue's own thread
/// (`FileIOThread`), never on the cooperative pool or an event loop: the callers only await it. What
/// other threads need to know without waiting for the disk (`isFull` for the receiver's backpressure
/// check, `stats`, the gauges) is published in atomics after every change, and read without a lock.
/// Opening recovers what is on disk on the calling thread (once, before the pipeline runs);
/// `shutdown()` stops the thread. One reader at a time: it acknowledges, in order, what `next` handed out.
package final class PersistentQueue: Sendable {
    /// The destination's name (the `destination` dimension of the metrics).
    package let name: String
    package let configuration: PersistentQueueConfiguration
    /// Ledger and files; locked only by work on `io` (and at deinit), so never awaited by others.
    /// (Internal, not private: tests hold it to show what does not wait for it.)
    let core: Mutex<QueueCore>
    /// Readers waiting in `next`; never held across I/O.
    private let readers = Mutex(Readers())
    let io: FileIOThread
    private let metrics: PersistentQueueMetrics
    private let now: @Sendable () -> Int64

    // Published by `io` under `core`'s lock after every change of the ledger.
    private let full = Atomic<Bool>(false)
    private let queuedTraces = Atomic<Int>(0)
    private let queuedBytes = Atomic<Int>(0)
    private let unread = Atomic<Int>(0)
    /// `Int64.min` when nothing is queued.
    private let oldestEnqueuedAtMs = Atomic<Int64>(.min)

    private struct Readers {
        var closed = false
        /// Counts appends, so that a reader that found nothing waits only until the next one.
        var appends: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID: UInt64 = 0

        mutating func takeWaiters() -> [CheckedContinuation<Void, Never>] {
            defer { waiters = [:] }
            return Array(waiters.values)
        }
    }

    package convenience init(
        name: String, configuration: PersistentQueueConfiguration, logger: Logger, metrics: any MetricsFactory
    ) throws {
        try self.init(name: name, configuration: configuration, logger: logger, metrics: metrics,
                      now: PersistentQueue.wallClockMilliseconds)
    }

    /// Opens (or creates) the queue in `configuration.directory` and recovers what is on disk.
    /// - Parameter now: wall-clock time in milliseconds since 1970 (append times, oldest-age gauge).
    package convenience init(
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
        self.init(name: name, configuration: configuration, logger: logger, metrics: metrics, recovered: recovered, now: now)
    }

    /// Everything that can fail is done by the convenience initializer above: Swift 6.3.1's optimizer
    /// crashed ("Found outside of lifetime use", CopyPropagation) on this class's initializer while it
    /// both threw and stored the Mutex-wrapped core.
    private init(
        name: String, configuration: PersistentQueueConfiguration, logger: Logger, metrics: PersistentQueueMetrics,
        recovered: QueueRecovery.Result, now: @escaping @Sendable () -> Int64
    ) {
        self.name = name
        self.configuration = configuration
        self.now = now
        self.metrics = metrics
        let core = QueueCore(
            directory: configuration.directory, fsync: configuration.fsync, logger: logger, metrics: metrics,
            ledger: recovered.ledger, redeliverThrough: recovered.handedOut, handedOutMark: recovered.handedOut)
        self.core = Mutex(core)
        io = FileIOThread(name: "queue \(name)")
        publish(core.ledger, nowMs: now())
    }

    deinit {
        core.withLock { $0.close() }
    }

    package static let wallClockMilliseconds: @Sendable () -> Int64 = {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// Appends (and, per policy, fsyncs). Returns how many traces were refused because the queue is full
    /// (the oldest data is kept; refused traces are counted in metrics).
    ///
    /// The traces that fit are written with one write (and one fsync) for the whole call.
    @discardableResult
    package func append(_ traces: [FinishedTrace]) async throws -> Int {
        guard !traces.isEmpty else { return 0 }
        // Encoding is the costly CPU part: done by the caller, so that the I/O thread only writes.
        let prepared = traces.map(QueueRecord.Prepared.init)
        return try await io.run { [self] () throws(QueueError) -> Int in try write(prepared) }
    }

    /// `append`'s part on the I/O thread: writes, publishes, and wakes the readers if anything was written.
    private func write(_ prepared: [QueueRecord.Prepared]) throws(QueueError) -> Int {
        let nowMs = now()
        typealias Waiters = [CheckedContinuation<Void, Never>]
        let (refused, waiters) = try core.withLock { core throws(QueueError) -> (Int, Waiters) in
            let refused = try core.append(prepared, nowMs: nowMs)
            publish(core.ledger, nowMs: nowMs)
            guard refused < prepared.count else { return (refused, []) }
            let waiters = readers.withLock { readers -> Waiters in
                readers.appends += 1
                return readers.takeWaiters()
            }
            return (refused, waiters)
        }
        for waiter in waiters { waiter.resume() }
        return refused
    }

    /// True while the queue is at its byte limit (or refused a trace since bytes were last freed).
    /// Lock-free: current as of the last append, read or acknowledgement that finished.
    package var isFull: Bool { full.load(ordering: .acquiring) }

    /// Waits for records after those already handed out; nil once `close()` was called (what is
    /// left stays on disk for the next start) or when the calling task is cancelled.
    ///
    /// Returns at most `maxTraces` traces and at most `maxBytes` bytes of records, but always at least
    /// one trace (a trace bigger than `maxBytes` comes alone).
    package func next(maxTraces: Int, maxBytes: Int) async -> [QueuedTrace]? {
        precondition(maxTraces > 0, "maxTraces must be positive")
        while true {
            enum Step: Sendable { case batch([QueuedTrace]), closed, wait(appends: UInt64) }
            let step: Step
            do {
                step = try await io.run { [self] () -> Step in
                    core.withLock { core -> Step in
                        // Read under `core`'s lock: an append (which counts under it) cannot slip in between.
                        guard let appends = readers.withLock({ $0.closed ? nil : $0.appends }) else { return .closed }
                        let batch = core.readBatch(maxTraces: maxTraces, maxBytes: maxBytes)
                        publish(core.ledger, nowMs: now())
                        return batch.isEmpty ? .wait(appends: appends) : .batch(batch)
                    }
                }
            } catch {
                return nil  // The I/O thread is closed.
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
        let id = readers.withLock { readers in
            defer { readers.nextWaiterID += 1 }
            return readers.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = readers.withLock { readers -> Bool in
                    // Checked under the lock, so an append or a cancellation cannot slip in between.
                    if readers.closed || readers.appends != appends || Task.isCancelled { return true }
                    readers.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            readers.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
        return !Task.isCancelled
    }

    /// Everything up to and including `sequence` is done; fully acknowledged segments are deleted.
    /// Throws when `sequence` lies beyond what was handed out, or the watermark cannot be written.
    package func acknowledge(through sequence: UInt64) async throws {
        try await io.run { [self] () throws(QueueError) in
            try core.withLock { core throws(QueueError) in
                defer { publish(core.ledger, nowMs: now()) }
                try core.acknowledge(through: sequence)
            }
        }
    }

    /// Queued traces and bytes and the oldest append time; lock-free, like `isFull` (each field is
    /// current; read while an operation finishes, the fields may straddle it).
    package var stats: QueueStats {
        let oldest = oldestEnqueuedAtMs.load(ordering: .acquiring)
        return QueueStats(queuedTraces: queuedTraces.load(ordering: .acquiring),
                          queuedBytes: queuedBytes.load(ordering: .acquiring),
                          oldestEnqueuedAtMs: oldest == .min ? nil : oldest)
    }

    /// Queued traces not handed out yet.
    var unreadTraces: Int { unread.load(ordering: .acquiring) }

    /// Readers suspended in `next`.
    var waitingReaders: Int { readers.withLock { $0.waiters.count } }

    /// Updates the gauges from the published state, without waiting for the I/O thread: the oldest
    /// item's age grows while nothing is appended, read or acknowledged (during an outage). Call it
    /// periodically (`QueueSender` does).
    package func refreshMetrics() {
        metrics.report(stats, nowMs: now())
    }

    /// Wakes the readers (their `next` returns nil) and closes the files; appends after it fail, and
    /// what is on disk stays for the next start. A reader may still acknowledge what it holds.
    package func close() async {
        let waiters = readers.withLock { readers in
            readers.closed = true
            return readers.takeWaiters()
        }
        for waiter in waiters { waiter.resume() }
        _ = try? await io.run { [self] in core.withLock { $0.close() } }
    }

    /// Closes the queue, then stops its I/O thread once the work already submitted is done; for the
    /// owner, when nothing will use the queue any more (acknowledgements after it fail).
    package func shutdown() async {
        await close()
        await io.shutdown()
    }

    /// Publishes the ledger's state for lock-free readers and sets the gauges (called under `core`'s
    /// lock, so that they never go back to an older state).
    private func publish(_ ledger: QueueLedger, nowMs: Int64) {
        let stats = ledger.stats
        full.store(ledger.isFull, ordering: .releasing)
        queuedTraces.store(stats.queuedTraces, ordering: .releasing)
        queuedBytes.store(stats.queuedBytes, ordering: .releasing)
        unread.store(ledger.unreadTraces, ordering: .releasing)
        oldestEnqueuedAtMs.store(stats.oldestEnqueuedAtMs ?? .min, ordering: .releasing)
        metrics.report(stats, nowMs: nowMs)
    }
}
