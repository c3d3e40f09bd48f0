import Logging

/// The mutable side of a `PersistentQueue`: the ledger plus the open files. Lives inside the queue's
/// mutex, which only the queue's I/O thread takes; every method does its file I/O synchronously.
struct QueueCore {
    let directory: String
    let fsync: FsyncPolicy
    let logger: Logger
    let metrics: PersistentQueueMetrics
    var ledger: QueueLedger
    /// The open (last, unsealed) segment, for appends.
    var writer: DurableFile?
    /// The segment the cursor is in, for reads.
    var reader: (segment: UInt64, file: DurableFile)?
    /// Records at or below this sequence were handed out before the last restart: handing them out
    /// again is a redelivery.
    var redeliverThrough: UInt64
    /// The handed-out mark last written.
    var handedOutMark: UInt64
    var closed = false

    // MARK: File names

    static let acknowledgedFile = "acknowledged.mark"
    static let handedOutFile = "handed-out.mark"
    static let segmentPrefix = "segment-"
    static let segmentSuffix = ".stq"

    static func segmentName(_ firstSequence: UInt64) -> String {
        segmentPrefix + FileSystem.sortableName(firstSequence) + segmentSuffix
    }

    /// The first sequence named by a segment file name, or nil for other files.
    static func segmentSequence(_ name: String) -> UInt64? {
        guard name.hasPrefix(segmentPrefix), name.hasSuffix(segmentSuffix) else { return nil }
        return UInt64(name.dropFirst(segmentPrefix.count).dropLast(segmentSuffix.count))
    }

    func path(_ name: String) -> String { directory + "/" + name }

    var syncs: Bool { fsync == .batch }

    // MARK: Appending

    /// Writes the admitted records of `prepared` in one write (and one fsync per policy).
    /// Returns how many were refused for lack of room.
    mutating func append(_ prepared: [QueueRecord.Prepared], nowMs: Int64) throws(QueueError) -> Int {
        guard !closed else { throw QueueError("queue \(directory) is closed; cannot append") }
        let admitted = ledger.admit(prepared.map(\.recordSize))
        let records = zip(prepared, admitted).filter(\.1).map(\.0)
        let refused = prepared.count - records.count
        if refused > 0 {
            metrics.refused.increment(by: refused)
            logger.debug("queue full, traces refused", metadata: [
                "queue.refused": "\(refused)", "queue.bytes": "\(ledger.queuedBytes)",
            ])
        }
        guard !records.isEmpty else { return refused }
        let sizes = records.map(\.recordSize)
        let total = sizes.reduce(0, +)
        if ledger.needsNewSegment(forBytes: total) { try startSegment() }
        guard let writer, let offset = ledger.activeSegment?.size else {
            preconditionFailure("no open segment after startSegment")
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(total)
        var sequence = ledger.nextSequence
        for record in records {
            QueueRecord.write(record, sequence: sequence, enqueuedAtMs: nowMs, into: &buffer)
            sequence += 1
        }
        do throws(QueueError) {
            try writer.write(buffer, at: offset)
            if syncs { try writer.sync() }
        } catch {
            // Leave no partial batch behind: it would be read back as a torn record after the end.
            try? writer.truncate(to: offset)
            throw error
        }
        _ = ledger.appended(sizes, enqueuedAtMs: nowMs)
        return refused
    }

    /// Seals the open segment and creates the next one (magic written, and with the directory entry,
    /// synced per policy).
    private mutating func startSegment() throws(QueueError) {
        let firstSequence = ledger.nextSequence
        let file = try DurableFile.open(path(Self.segmentName(firstSequence)), writable: true)
        do throws(QueueError) {
            try file.truncate(to: 0)
            try file.write(QueueRecord.segmentMagic, at: 0)
            if syncs {
                try file.sync()
                try FileSystem.syncDirectory(directory)
            }
        } catch {
            file.close()
            throw error
        }
        writer?.close()
        writer = file
        removeSegmentFiles(ledger.startSegment())
    }

    // MARK: Reading

    /// Reads up to `maxTraces` unread records (and up to `maxBytes`, but at least one) from the cursor.
    /// Corrupt records are logged, counted and skipped with the rest of their segment.
    mutating func readBatch(maxTraces: Int, maxBytes: Int) -> [QueuedTrace] {
        var batch: [QueuedTrace] = []
        var bytes = 0
        while batch.count < maxTraces, let (cursor, end) = ledger.readPosition() {
            let record: ArraySlice<UInt8>
            let payload: Range<Int>
            let header: QueueRecord.Header
            do {
                guard let found = try readRecord(at: cursor, end: end, within: batch.isEmpty ? nil : maxBytes - bytes) else {
                    break
                }
                (record, payload, header) = found
            } catch {
                discardRestOfSegment(at: cursor, problem: error)
                continue
            }
            do {
                batch.append(try QueueRecord.decode(record[payload]))
                bytes += record.count
                ledger.read(bytes: record.count, enqueuedAtMs: header.enqueuedAtMs, undeliverable: false)
                if header.sequence <= redeliverThrough { metrics.redelivered.increment() }
            } catch {
                // The checksum matched, so the bytes are as written: no later read will do better.
                metrics.corruptRecords.increment()
                metrics.lost.increment()
                logger.error("queued record cannot be decoded; dropping it", metadata: [
                    "queue.segment": "\(Self.segmentName(cursor.segment))", "queue.sequence": "\(cursor.sequence)",
                    "error": "\(error)",
                ])
                ledger.read(bytes: record.count, enqueuedAtMs: header.enqueuedAtMs, undeliverable: true)
            }
        }
        if let removable = ledger.settleUndeliverable() { persistAcknowledgement(removing: removable) }
        peekFirstUnread()
        if ledger.handedOutThrough > handedOutMark { writeHandedOutMark() }
        return batch
    }

    /// The checked record at `cursor` (its bytes, payload range and header); nil when it is bigger
    /// than `room`. Throws when the record is cut short, fails its checksum or is out of sequence.
    private mutating func readRecord(
        at cursor: QueueLedger.Cursor, end: Int, within room: Int?
    ) throws(QueueError) -> (ArraySlice<UInt8>, Range<Int>, QueueRecord.Header)? {
        let file = try readerFile(for: cursor.segment)
        let frame = try file.read(count: QueueRecord.frameSize, at: cursor.offset)
        guard frame.count == QueueRecord.frameSize, end - cursor.offset >= QueueRecord.frameSize else {
            throw QueueError("record frame cut short")
        }
        let recordSize = QueueRecord.frameSize + Int(frame[...].loadLittleEndian(UInt32.self, at: 0))
        if let room, recordSize > room { return nil }
        guard recordSize <= end - cursor.offset else {
            throw QueueError("record of \(recordSize) bytes runs past the end of the segment")
        }
        let record = try file.read(count: recordSize, at: cursor.offset)[...]
        switch QueueRecord.frame(in: record, at: 0) {
        case .record(let payload):
            let (header, _) = try QueueRecord.header(of: record[payload])
            guard header.sequence == cursor.sequence else {
                throw QueueError("record carries sequence \(header.sequence), expected \(cursor.sequence)")
            }
            return (record, payload, header)
        case .invalid(let problem):
            throw QueueError(problem)
        case .end:
            throw QueueError("record vanished from the segment")
        }
    }

    /// Learns the append time of the first unread record (for the oldest-age gauge) from its header.
    private mutating func peekFirstUnread() {
        guard ledger.needsUnreadPeek, let (cursor, end) = ledger.readPosition() else { return }
        let count = QueueRecord.enqueuedAtRange.upperBound
        guard end - cursor.offset >= count,
              let bytes = try? readerFile(for: cursor.segment).read(count: count, at: cursor.offset),
              bytes.count == count else { return }
        ledger.peeked(enqueuedAtMs: QueueRecord.enqueuedAtMs(inRecordPrefix: bytes[...]))
    }

    private mutating func readerFile(for segment: UInt64) throws(QueueError) -> DurableFile {
        if let reader, reader.segment == segment { return reader.file }
        reader?.file.close()
        reader = nil
        let file = try DurableFile.open(path(Self.segmentName(segment)), writable: false)
        reader = (segment, file)
        return file
    }

    private mutating func discardRestOfSegment(at cursor: QueueLedger.Cursor, problem: any Error) {
        let wasOpen = ledger.activeSegment?.firstSequence == cursor.segment
        let (traces, bytes) = ledger.discardRestOfSegment()
        metrics.corruptRecords.increment()
        metrics.lost.increment(by: traces)
        logger.error("corrupt record in queue segment; dropping the rest of the segment", metadata: [
            "queue.segment": "\(Self.segmentName(cursor.segment))", "queue.offset": "\(cursor.offset)",
            "queue.lost_traces": "\(traces)", "queue.lost_bytes": "\(bytes)", "error": "\(problem)",
        ])
        if wasOpen {
            // The segment is sealed now; the next append starts a new one.
            writer?.close()
            writer = nil
        }
    }

    private mutating func writeHandedOutMark() {
        let mark = ledger.handedOutThrough
        do {
            // Only for counting redeliveries: no fsync.
            try FileSystem.replace(path(Self.handedOutFile), with: QueueMarkFile.encode(mark), sync: false)
            handedOutMark = mark
        } catch {
            logger.warning("cannot record handed-out position", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Acknowledging

    mutating func acknowledge(through sequence: UInt64) throws(QueueError) {
        let removable: [UInt64]
        do throws(QueueLedger.AcknowledgementError) {
            removable = try ledger.acknowledge(through: sequence)
        } catch {
            throw QueueError(
                "cannot acknowledge through \(error.sequence): records were handed out only through \(error.handedOutThrough)")
        }
        try writeAcknowledgement()
        removeSegmentFiles(removable)
    }

    /// Persists the watermark, then removes segments: a segment is never gone while the watermark on
    /// disk still needs it.
    private mutating func persistAcknowledgement(removing segments: [UInt64]) {
        do {
            try writeAcknowledgement()
            removeSegmentFiles(segments)
        } catch {
            logger.error("cannot persist queue acknowledgement", metadata: ["error": "\(error)"])
        }
    }

    private func writeAcknowledgement() throws(QueueError) {
        try FileSystem.replace(path(Self.acknowledgedFile), with: QueueMarkFile.encode(ledger.acknowledged), sync: syncs)
    }

    private mutating func removeSegmentFiles(_ segments: [UInt64]) {
        for segment in segments {
            if reader?.segment == segment {
                reader?.file.close()
                reader = nil
            }
            do {
                try FileSystem.remove(path(Self.segmentName(segment)))
            } catch {
                // Harmless: its records are acknowledged; it is removed again at the next start.
                logger.warning("cannot remove acknowledged segment", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: Closing

    /// Closes the files; later appends fail.
    mutating func close() {
        closed = true
        writer?.close()
        writer = nil
        reader?.file.close()
        reader = nil
    }
}
