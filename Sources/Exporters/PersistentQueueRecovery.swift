import Logging

/// Rebuilds a queue's ledger from its directory at start-up.
///
/// Reads the acknowledgement watermark, then every segment in order, verifying every record (length,
/// checksum, header, consecutive sequences). The first bad record of a segment, normally the record a
/// crash cut short, ends it: the file is truncated there and what followed is counted as lost.
/// Segments whose records are all acknowledged are deleted; all others are sealed (appends start a
/// new segment).
struct QueueRecovery {
    var directory: String
    var configuration: PersistentQueueConfiguration
    var logger: Logger
    var metrics: PersistentQueueMetrics

    struct Result {
        var ledger: QueueLedger
        /// The handed-out mark found on disk (never below the watermark).
        var handedOut: UInt64
    }

    /// One segment as found on disk, after truncation of a bad tail.
    private struct ScannedSegment {
        var segment: QueueLedger.Segment
        var unackedTraces = 0
        var unackedBytes = 0
        /// Offset and append time of the first record above the watermark.
        var firstUnacked: (offset: Int, sequence: UInt64, enqueuedAtMs: Int64)?
    }

    private var syncs: Bool { configuration.fsync == .batch }

    func recover() throws(QueueError) -> Result {
        try FileSystem.makeDirectory(directory)
        let acknowledged = readMark(QueueCore.acknowledgedFile) ?? 0
        let handedOut = max(readMark(QueueCore.handedOutFile) ?? acknowledged, acknowledged)
        var nextSequence = acknowledged + 1
        var kept: [ScannedSegment] = []
        let names = try FileSystem.list(directory)
        for name in names where name.hasSuffix(".tmp") {
            // A mark replacement that did not get to its rename.
            try FileSystem.remove(path(name))
        }
        let segments = names.compactMap { name in QueueCore.segmentSequence(name).map { (name, $0) } }
            .sorted { $0.1 < $1.1 }
        for (name, firstSequence) in segments {
            nextSequence = max(nextSequence, firstSequence)
            guard let scanned = try scan(name, firstSequence: firstSequence, acknowledged: acknowledged) else { continue }
            if let last = scanned.segment.lastSequence { nextSequence = max(nextSequence, last + 1) }
            if scanned.unackedTraces > 0 {
                kept.append(scanned)
            } else {
                try FileSystem.remove(path(name))
            }
        }
        let first = kept.first
        let cursor = first.flatMap { first in
            first.firstUnacked.map {
                QueueLedger.Cursor(segment: first.segment.firstSequence, offset: $0.offset, sequence: $0.sequence)
            }
        }
        let ledger = QueueLedger(
            maxBytes: configuration.maxBytes, segmentBytes: configuration.segmentBytes,
            segments: kept.map(\.segment), acknowledged: acknowledged, nextSequence: nextSequence, cursor: cursor,
            queuedTraces: kept.reduce(0) { $0 + $1.unackedTraces }, queuedBytes: kept.reduce(0) { $0 + $1.unackedBytes },
            firstUnreadEnqueuedAtMs: first?.firstUnacked?.enqueuedAtMs)
        if ledger.queuedTraces > 0 {
            logger.info("resuming queue", metadata: [
                "queue.traces": "\(ledger.queuedTraces)", "queue.bytes": "\(ledger.queuedBytes)",
                "queue.acknowledged": "\(acknowledged)", "queue.handed_out": "\(handedOut)",
            ])
        }
        return Result(ledger: ledger, handedOut: handedOut)
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    private func readMark(_ name: String) -> UInt64? {
        do {
            guard let bytes = try FileSystem.contents(of: path(name)) else { return nil }
            guard let mark = QueueMarkFile.decode(bytes) else {
                // Unreadable: start from nothing acknowledged (at-least-once: records are sent again).
                logger.error("queue mark file is damaged; ignoring it", metadata: ["queue.file": "\(path(name))"])
                return nil
            }
            return mark
        } catch {
            logger.error("cannot read queue mark file", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Verifies one segment; truncates it at its first bad record. nil when the file is not a segment
    /// of this format (set aside as `<name>.corrupt`) or was cut short before its magic (removed).
    private func scan(_ name: String, firstSequence: UInt64, acknowledged: UInt64) throws(QueueError) -> ScannedSegment? {
        let file = try DurableFile.open(path(name), writable: true)
        defer { file.close() }
        let bytes = try file.readAll()[...]
        let magic = QueueRecord.segmentMagic
        guard bytes.count >= magic.count, Array(bytes.prefix(magic.count)) == magic else {
            if bytes.count < magic.count, magic.starts(with: bytes) {
                // Created, then the process stopped before the magic was complete.
                try FileSystem.remove(path(name))
            } else {
                metrics.corruptRecords.increment()
                logger.error("file in queue directory is not a queue segment; setting it aside", metadata: [
                    "queue.segment": "\(path(name))",
                ])
                try FileSystem.rename(path(name), to: path(name + ".corrupt"))
            }
            return nil
        }
        var scanned = ScannedSegment(segment: QueueLedger.Segment(
            firstSequence: firstSequence, lastSequence: nil, size: magic.count, sealed: true))
        var offset = magic.count
        var expected = firstSequence
        while true {
            let problem: String
            switch QueueRecord.frame(in: bytes, at: offset) {
            case .end:
                return scanned
            case .invalid(let found):
                problem = found
            case .record(let payload):
                do {
                    let (header, _) = try QueueRecord.header(of: bytes[payload])
                    guard header.sequence == expected else {
                        throw QueueError("record carries sequence \(header.sequence), expected \(expected)")
                    }
                    if header.sequence > acknowledged {
                        if scanned.firstUnacked == nil { scanned.firstUnacked = (offset, expected, header.enqueuedAtMs) }
                        scanned.unackedTraces += 1
                        scanned.unackedBytes += payload.upperBound - offset
                    }
                    scanned.segment.lastSequence = expected
                    expected += 1
                    offset = payload.upperBound
                    scanned.segment.size = offset
                    continue
                } catch {
                    problem = "\(error)"
                }
            }
            // A torn or corrupt record: keep what precedes it.
            metrics.corruptRecords.increment()
            logger.warning("torn or corrupt record in queue segment; truncating the segment there", metadata: [
                "queue.segment": "\(path(name))", "queue.offset": "\(offset)",
                "queue.dropped_bytes": "\(bytes.count - offset)", "problem": "\(problem)",
            ])
            try file.truncate(to: offset)
            if syncs { try file.sync() }
            return scanned
        }
    }
}
