import TraceEdge

/// When the queue forces appended records to disk.
package enum FsyncPolicy: String, Sendable, Codable, CaseIterable {
    /// fsync after every appended batch (default): nothing acknowledged to a client is lost on power loss.
    case batch
    /// Leave flushing to the OS: fastest; a crash of the machine (not of the process) may lose the tail.
    case never
}

package struct PersistentQueueConfiguration: Sendable, Equatable {
    /// Directory holding this destination's segment files (created if missing).
    package var directory: String
    /// Bytes on disk at most (default 1 GiB); when full, new traces are refused and counted.
    package var maxBytes: Int
    /// A segment file is closed and a new one started past this size.
    package var segmentBytes: Int
    package var fsync: FsyncPolicy

    package init(directory: String, maxBytes: Int = 1 << 30, segmentBytes: Int = 8 << 20, fsync: FsyncPolicy = .batch) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.segmentBytes = segmentBytes
        self.fsync = fsync
    }

    /// Every problem with this configuration, each naming its field; empty when it is usable.
    package var problems: [String] {
        var problems: [String] = []
        if directory.isEmpty { problems.append("directory: must not be empty") }
        if maxBytes <= 0 { problems.append("maxBytes: must be positive, got \(maxBytes)") }
        if segmentBytes <= 0 { problems.append("segmentBytes: must be positive, got \(segmentBytes)") }
        return problems
    }
}

package struct QueueError: Error, Sendable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// A trace read back from the queue, with its position for acknowledgement.
package struct QueuedTrace: Sendable {
    /// Increasing, never reused; acknowledge in order.
    package var sequence: UInt64
    package var trace: FinishedTrace
    /// Wall-clock time of the append, milliseconds since 1970.
    package var enqueuedAtMs: Int64
    package init(sequence: UInt64, trace: FinishedTrace, enqueuedAtMs: Int64) {
        self.sequence = sequence
        self.trace = trace
        self.enqueuedAtMs = enqueuedAtMs
    }
}

package struct QueueStats: Sendable, Equatable {
    /// Traces appended and not yet acknowledged (read or not).
    package var queuedTraces: Int
    /// Their bytes on disk (record framing included).
    package var queuedBytes: Int
    /// Append time of the oldest of them, milliseconds since 1970.
    package var oldestEnqueuedAtMs: Int64?
    package init(queuedTraces: Int = 0, queuedBytes: Int = 0, oldestEnqueuedAtMs: Int64? = nil) {
        self.queuedTraces = queuedTraces
        self.queuedBytes = queuedBytes
        self.oldestEnqueuedAtMs = oldestEnqueuedAtMs
    }
}
