/// The bookkeeping of one persistent queue, without I/O: which segment files exist and what they
/// hold, where the reader is, what was handed out and not yet acknowledged, and the byte bound.
///
/// Sequences: every appended trace gets the next sequence; sequences inside a segment are consecutive.
/// `acknowledged` is the watermark: every record at or below it is done (delivered or dead-lettered).
struct QueueLedger {
    /// One segment file.
    struct Segment: Equatable {
        /// Also the file's name.
        var firstSequence: UInt64
        /// nil while the segment holds no record.
        var lastSequence: UInt64?
        /// Bytes of the file that hold valid data (magic and records).
        var size: Int
        /// No more appends go to a sealed segment (only the last segment may be unsealed).
        var sealed: Bool
    }

    /// A record handed to the reader and not yet acknowledged.
    struct Outstanding: Equatable {
        var sequence: UInt64
        var bytes: Int
        var enqueuedAtMs: Int64
        /// Its checksum matched but its contents could not be decoded: never handed out, acknowledged
        /// with the records around it.
        var undeliverable: Bool
    }

    /// Where the next unread record starts.
    struct Cursor: Equatable {
        /// The segment, by its first sequence.
        var segment: UInt64
        var offset: Int
        /// The sequence the record at `offset` must carry.
        var sequence: UInt64
    }

    let maxBytes: Int
    let segmentBytes: Int
    private(set) var segments: [Segment]
    private(set) var acknowledged: UInt64
    private(set) var nextSequence: UInt64
    private(set) var cursor: Cursor?
    private(set) var outstanding: [Outstanding] = []
    /// Appended and not acknowledged (read or not).
    private(set) var queuedTraces: Int
    private(set) var queuedBytes: Int
    /// Append time of the first unread record, when known (see `needsUnreadPeek`).
    private(set) var firstUnreadEnqueuedAtMs: Int64?
    /// An append refused a trace and no bytes were freed since.
    private(set) var refusedSinceFreed = false

    /// A queue recovered from disk. `segments` are sealed and each holds an unacknowledged record;
    /// `cursor` points at the first of them.
    init(
        maxBytes: Int, segmentBytes: Int, segments: [Segment], acknowledged: UInt64, nextSequence: UInt64,
        cursor: Cursor?, queuedTraces: Int, queuedBytes: Int, firstUnreadEnqueuedAtMs: Int64?
    ) {
        self.maxBytes = maxBytes
        self.segmentBytes = segmentBytes
        self.segments = segments
        self.acknowledged = acknowledged
        self.nextSequence = nextSequence
        self.cursor = cursor
        self.queuedTraces = queuedTraces
        self.queuedBytes = queuedBytes
        self.firstUnreadEnqueuedAtMs = firstUnreadEnqueuedAtMs
    }

    var unreadTraces: Int { queuedTraces - outstanding.count }

    var stats: QueueStats {
        QueueStats(
            queuedTraces: queuedTraces, queuedBytes: queuedBytes,
            oldestEnqueuedAtMs: outstanding.first?.enqueuedAtMs ?? firstUnreadEnqueuedAtMs)
    }

    var isFull: Bool { queuedBytes >= maxBytes || refusedSinceFreed }

    /// The last handed-out sequence not yet acknowledged, else the watermark.
    var handedOutThrough: UInt64 { outstanding.last?.sequence ?? acknowledged }

    /// The unread records exist but the first one's append time is not known (a batch stopped before it).
    var needsUnreadPeek: Bool { unreadTraces > 0 && firstUnreadEnqueuedAtMs == nil }

    var activeSegment: Segment? {
        guard let last = segments.last, !last.sealed else { return nil }
        return last
    }

    // MARK: Appending

    /// Which records of a batch fit under `maxBytes` next to what is queued, in order. The oldest data is
    /// kept: a record that does not fit is refused, a smaller one after it may still fit.
    mutating func admit(_ recordSizes: [Int]) -> [Bool] {
        var bytes = queuedBytes
        let admitted = recordSizes.map { size in
            guard bytes + size <= maxBytes else { return false }
            bytes += size
            return true
        }
        if admitted.contains(false) { refusedSinceFreed = true }
        return admitted
    }

    /// True when `bytes` more must go to a new segment: there is no open segment, or the open one holds
    /// records and would grow past `segmentBytes`.
    func needsNewSegment(forBytes bytes: Int) -> Bool {
        guard let active = activeSegment else { return true }
        return active.lastSequence != nil && active.size + bytes > segmentBytes
    }

    /// Seals the open segment (if any) and adds an empty one named `nextSequence`.
    /// Returns the segments that can be deleted now.
    mutating func startSegment() -> [UInt64] {
        if !segments.isEmpty { segments[segments.count - 1].sealed = true }
        let segment = Segment(
            firstSequence: nextSequence, lastSequence: nil, size: QueueRecord.segmentHeaderSize, sealed: false)
        segments.append(segment)
        if cursor == nil { cursor = Self.start(of: segment) }
        return removeFinishedSegments()
    }

    /// Records `recordSizes` written, in order, at the end of the open segment, all at `enqueuedAtMs`.
    /// Returns the first sequence given out.
    mutating func appended(_ recordSizes: [Int], enqueuedAtMs: Int64) -> UInt64 {
        precondition(activeSegment != nil, "append without an open segment")
        let first = nextSequence
        guard !recordSizes.isEmpty else { return first }
        let total = recordSizes.reduce(0, +)
        if unreadTraces == 0 { firstUnreadEnqueuedAtMs = enqueuedAtMs }
        nextSequence += UInt64(recordSizes.count)
        segments[segments.count - 1].size += total
        segments[segments.count - 1].lastSequence = nextSequence - 1
        queuedTraces += recordSizes.count
        queuedBytes += total
        return first
    }

    // MARK: Reading

    /// Where the next unread record is, and where the valid bytes of its segment end; moves the cursor
    /// past the end of sealed segments. nil when nothing is unread.
    mutating func readPosition() -> (cursor: Cursor, end: Int)? {
        guard unreadTraces > 0 else { return nil }
        while let current = cursor, let index = segmentIndex(current.segment) {
            let segment = segments[index]
            if current.offset < segment.size { return (current, segment.size) }
            guard segment.sealed, index + 1 < segments.count else { return nil }
            cursor = Self.start(of: segments[index + 1])
        }
        return nil
    }

    /// The record at the cursor, `bytes` long, was read (and handed out unless `undeliverable`).
    mutating func read(bytes: Int, enqueuedAtMs: Int64, undeliverable: Bool) {
        guard let current = cursor else { preconditionFailure("read without a cursor") }
        outstanding.append(Outstanding(
            sequence: current.sequence, bytes: bytes, enqueuedAtMs: enqueuedAtMs, undeliverable: undeliverable))
        cursor = Cursor(segment: current.segment, offset: current.offset + bytes, sequence: current.sequence + 1)
        firstUnreadEnqueuedAtMs = nil
    }

    /// The unread append time found by peeking at the record at the cursor.
    mutating func peeked(enqueuedAtMs: Int64) {
        firstUnreadEnqueuedAtMs = enqueuedAtMs
    }

    /// The bytes from the cursor to the end of its segment are unusable (corrupt): they are dropped
    /// from the accounting and the segment ends at the cursor (sealed, so nothing is appended after
    /// the damage). Returns the traces and bytes dropped.
    mutating func discardRestOfSegment() -> (traces: Int, bytes: Int) {
        guard let current = cursor, let index = segmentIndex(current.segment) else { return (0, 0) }
        let segment = segments[index]
        let traces = segment.lastSequence.map { $0 >= current.sequence ? Int($0 - current.sequence + 1) : 0 } ?? 0
        let bytes = segment.size - current.offset
        segments[index].size = current.offset
        segments[index].lastSequence = current.sequence > segment.firstSequence ? current.sequence - 1 : nil
        segments[index].sealed = true
        queuedTraces -= traces
        queuedBytes -= bytes
        firstUnreadEnqueuedAtMs = nil
        return (traces, bytes)
    }

    // MARK: Acknowledging

    struct AcknowledgementError: Error, Equatable {
        var sequence: UInt64
        var handedOutThrough: UInt64
    }

    /// Everything up to and including `sequence` is done; undeliverable records right after it are
    /// done too. Returns the segments that can be deleted now (sealed, every record acknowledged,
    /// the reader past them).
    mutating func acknowledge(through sequence: UInt64) throws(AcknowledgementError) -> [UInt64] {
        guard sequence > acknowledged else { return [] }
        guard sequence <= handedOutThrough else {
            throw AcknowledgementError(sequence: sequence, handedOutThrough: handedOutThrough)
        }
        var done = 0
        while done < outstanding.count,
              outstanding[done].sequence <= sequence || outstanding[done].undeliverable {
            done += 1
        }
        let freed = outstanding[..<done].reduce(0) { $0 + $1.bytes }
        acknowledged = done > 0 ? max(sequence, outstanding[done - 1].sequence) : sequence
        outstanding.removeFirst(done)
        queuedTraces -= done
        queuedBytes -= freed
        if freed > 0 { refusedSinceFreed = false }
        return removeFinishedSegments()
    }

    /// Acknowledges the outstanding records when all of them are undeliverable (nothing the reader
    /// holds would ever acknowledge them). Returns the deletable segments, or nil when nothing changed.
    mutating func settleUndeliverable() -> [UInt64]? {
        guard let last = outstanding.last, outstanding.allSatisfy(\.undeliverable) else { return nil }
        return try? acknowledge(through: last.sequence)
    }

    // MARK: Segments

    private func segmentIndex(_ firstSequence: UInt64) -> Int? {
        segments.firstIndex { $0.firstSequence == firstSequence }
    }

    /// The cursor at the first record of `segment`.
    private static func start(of segment: Segment) -> Cursor {
        Cursor(segment: segment.firstSequence, offset: QueueRecord.segmentHeaderSize, sequence: segment.firstSequence)
    }

    /// Drops sealed segments whose every record is acknowledged from the front (acknowledged records
    /// were all handed out, so the cursor is at their end) and returns their first sequences.
    private mutating func removeFinishedSegments() -> [UInt64] {
        var removed: [UInt64] = []
        while let first = segments.first, first.sealed, first.lastSequence.map({ $0 <= acknowledged }) ?? true {
            removed.append(first.firstSequence)
            segments.removeFirst()
            if cursor?.segment == first.firstSequence {
                cursor = segments.first.map(Self.start(of:))
            }
        }
        return removed
    }
}
