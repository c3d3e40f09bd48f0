import TraceEdge

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

    /// Every problem with this configuration, each naming its field; empty when it is usable.
    public var problems: [String] {
        var problems: [String] = []
        if directory.isEmpty { problems.append("directory: must not be empty") }
        if maxBytes <= 0 { problems.append("maxBytes: must be positive, got \(maxBytes)") }
        if segmentBytes <= 0 { problems.append("segmentBytes: must be positive, got \(segmentBytes)") }
        return problems
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
    /// Traces appended and not yet acknowledged (read or not).
    public var queuedTraces: Int
    /// Their bytes on disk (record framing included).
    public var queuedBytes: Int
    /// Append time of the oldest of them, milliseconds since 1970.
    public var oldestEnqueuedAtMs: Int64?
    public init(queuedTraces: Int = 0, queuedBytes: Int = 0, oldestEnqueuedAtMs: Int64? = nil) {
        self.queuedTraces = queuedTraces
        self.queuedBytes = queuedBytes
        self.oldestEnqueuedAtMs = oldestEnqueuedAtMs
    }
}
