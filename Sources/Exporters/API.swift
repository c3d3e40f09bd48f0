// CONTRACT STUBS — replaced by the real implementation (Exporters helpers). Signatures are the contract.
import Foundation
import Logging
import Metrics
import OTLPWire
import TraceAssembler

// MARK: - Persistent queue (one per destination)

/// When the queue forces appended records to disk.
public enum FsyncPolicy: String, Sendable, Codable, CaseIterable {
    /// fsync after every appended batch (default): nothing acknowledged to a client is lost on power loss.
    case batch
    /// Leave flushing to the OS: fastest; a crash of the machine (not of the process) may lose the tail.
    case never
}

public struct PersistentQueueConfiguration: Sendable, Equatable {
    /// Directory holding this destination's segment files (created if missing).
    public var directory: String
    /// Bytes on disk at most (default 1 GiB); when full, new traces are refused and counted.
    public var maxBytes: Int
    /// A segment file is closed and a new one started past this size.
    public var segmentBytes: Int
    public var fsync: FsyncPolicy

    public init(directory: String, maxBytes: Int = 1 << 30, segmentBytes: Int = 8 << 20, fsync: FsyncPolicy = .batch) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.segmentBytes = segmentBytes
        self.fsync = fsync
    }
}

public struct QueueError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A trace read back from the queue, with its position for acknowledgement.
public struct QueuedTrace: Sendable {
    /// Increasing, never reused; acknowledge in order.
    public var sequence: UInt64
    public var trace: FinishedTrace
    /// Wall-clock time of the append, milliseconds since 1970.
    public var enqueuedAtMs: Int64
    public init(sequence: UInt64, trace: FinishedTrace, enqueuedAtMs: Int64) {
        self.sequence = sequence
        self.trace = trace
        self.enqueuedAtMs = enqueuedAtMs
    }
}

public struct QueueStats: Sendable, Equatable {
    public var queuedTraces: Int
    public var queuedBytes: Int
    public var oldestEnqueuedAtMs: Int64?
    public init(queuedTraces: Int = 0, queuedBytes: Int = 0, oldestEnqueuedAtMs: Int64? = nil) {
        self.queuedTraces = queuedTraces
        self.queuedBytes = queuedBytes
        self.oldestEnqueuedAtMs = oldestEnqueuedAtMs
    }
}

/// Append-only segment files with checksummed records. A segment is deleted only once every record
/// in it is acknowledged (delivered or dead-lettered). After a restart, reading resumes after the
/// last acknowledged record (at-least-once: a record delivered but not yet acknowledged when the
/// process died is sent again, and counted).
public final class PersistentQueue: Sendable {
    public init(name: String, configuration: PersistentQueueConfiguration, logger: Logger, metrics: any MetricsFactory) throws {}

    /// Appends (and, per policy, fsyncs). Returns how many traces were refused because the queue is full
    /// (the oldest data is kept; refused traces are counted in metrics).
    @discardableResult
    public func append(_ traces: [FinishedTrace]) throws -> Int { 0 }

    /// True while the queue is at its byte limit.
    public var isFull: Bool { false }

    /// Waits for records after those already handed out; nil once `close()` was called (what is
    /// left stays on disk for the next start).
    public func next(maxTraces: Int, maxBytes: Int) async -> [QueuedTrace]? { nil }

    /// Everything up to and including `sequence` is done; fully acknowledged segments are deleted.
    public func acknowledge(through sequence: UInt64) throws {}

    public var stats: QueueStats { QueueStats() }

    public func close() {}
}
