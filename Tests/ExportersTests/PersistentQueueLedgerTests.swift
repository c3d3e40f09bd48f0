import Testing
@testable import Exporters

/// The queue's bookkeeping, without files.
@Suite("PersistentQueue ledger")
struct PersistentQueueLedgerTests {
    private let header = QueueRecord.segmentHeaderSize

    private func emptyLedger(maxBytes: Int = 1_000, segmentBytes: Int = 300) -> QueueLedger {
        QueueLedger(maxBytes: maxBytes, segmentBytes: segmentBytes, segments: [], acknowledged: 0, nextSequence: 1,
                    cursor: nil, queuedTraces: 0, queuedBytes: 0, firstUnreadEnqueuedAtMs: nil)
    }

    /// Appends records of `sizes`, one append each, starting segments as the queue does.
    private func append(_ sizes: [Int], to ledger: inout QueueLedger, at time: Int64 = 0) -> [UInt64] {
        sizes.map { size in
            var removed: [UInt64] = []
            if ledger.needsNewSegment(forBytes: size) { removed = ledger.startSegment() }
            #expect(removed.isEmpty)
            return ledger.appended([size], enqueuedAtMs: time)
        }
    }

    /// Reads every unread record.
    private func readAll(_ ledger: inout QueueLedger, sizes: [Int]) {
        for size in sizes {
            #expect(ledger.readPosition() != nil)
            ledger.read(bytes: size, enqueuedAtMs: 0, undeliverable: false)
        }
        #expect(ledger.readPosition() == nil)
    }

    @Test func admitKeepsTheOldestAndStillTakesSmallerTracesThatFit() {
        var ledger = emptyLedger(maxBytes: 1_000)
        _ = append([600], to: &ledger)
        #expect(ledger.admit([500, 300, 200]) == [false, true, false])
        #expect(ledger.isFull)
        #expect(ledger.queuedBytes == 600, "admitting does not queue")
    }

    @Test func segmentsRollWhenTheNextAppendWouldPassSegmentBytes() {
        var ledger = emptyLedger(segmentBytes: header + 250)
        #expect(append([100, 100, 100, 400], to: &ledger) == [1, 2, 3, 4])
        #expect(ledger.segments.map(\.firstSequence) == [1, 3, 4], "a record bigger than a segment gets its own")
        #expect(ledger.segments.map(\.lastSequence) == [2, 3, 4])
        #expect(ledger.segments.map(\.size) == [header + 200, header + 100, header + 400])
        #expect(ledger.segments.map(\.sealed) == [true, true, false])
    }

    @Test func readingCrossesSegmentsAndAcknowledgingRemovesThemInOrder() throws {
        var ledger = emptyLedger(segmentBytes: header + 200)
        _ = append([100, 100, 100, 100, 100], to: &ledger)
        readAll(&ledger, sizes: [100, 100, 100, 100, 100])
        #expect(ledger.cursor == QueueLedger.Cursor(segment: 5, offset: header + 100, sequence: 6))
        #expect(try ledger.acknowledge(through: 2) == [1])
        #expect(try ledger.acknowledge(through: 3) == [])
        #expect(try ledger.acknowledge(through: 5) == [3], "the open segment stays")
        #expect(ledger.stats == QueueStats())
        #expect(ledger.segments.map(\.firstSequence) == [5])
    }

    @Test func acknowledgingWhatWasNotHandedOutIsAnError() throws {
        var ledger = emptyLedger()
        _ = append([100, 100], to: &ledger)
        ledger.read(bytes: 100, enqueuedAtMs: 0, undeliverable: false)
        #expect(throws: QueueLedger.AcknowledgementError(sequence: 2, handedOutThrough: 1)) {
            try ledger.acknowledge(through: 2)
        }
        #expect(try ledger.acknowledge(through: 0) == [])
        #expect(ledger.queuedTraces == 2)
    }

    @Test func discardingTheRestOfASegmentDropsItsUnreadRecordsAndSealsIt() throws {
        var ledger = emptyLedger(segmentBytes: 10_000)
        _ = append([100, 100, 100], to: &ledger, at: 7)
        ledger.read(bytes: 100, enqueuedAtMs: 7, undeliverable: false)
        let (traces, bytes) = ledger.discardRestOfSegment()
        #expect(traces == 2)
        #expect(bytes == 200)
        #expect(ledger.stats == QueueStats(queuedTraces: 1, queuedBytes: 100, oldestEnqueuedAtMs: 7))
        #expect(ledger.activeSegment == nil, "nothing is appended after damage")
        #expect(ledger.needsNewSegment(forBytes: 1))
        #expect(try ledger.acknowledge(through: 1) == [1])
        #expect(ledger.segments.isEmpty)
        #expect(ledger.cursor == nil)
    }

    @Test func undeliverableRecordsAreSettledWithTheirNeighbours() throws {
        var ledger = emptyLedger()
        _ = append([100, 100, 100], to: &ledger)
        ledger.read(bytes: 100, enqueuedAtMs: 0, undeliverable: true)
        #expect(ledger.settleUndeliverable() == [])
        #expect(ledger.acknowledged == 1)
        ledger.read(bytes: 100, enqueuedAtMs: 0, undeliverable: false)
        ledger.read(bytes: 100, enqueuedAtMs: 0, undeliverable: true)
        #expect(ledger.settleUndeliverable() == nil, "record 2 is still with the reader")
        _ = try ledger.acknowledge(through: 2)
        #expect(ledger.acknowledged == 3)
        #expect(ledger.queuedTraces == 0)
    }

    @Test func oldestAppendTimeComesFromTheReaderThenTheUnreadRecords() throws {
        var ledger = emptyLedger()
        _ = append([100], to: &ledger, at: 10)
        _ = append([100], to: &ledger, at: 20)
        #expect(ledger.stats.oldestEnqueuedAtMs == 10)
        ledger.read(bytes: 100, enqueuedAtMs: 10, undeliverable: false)
        #expect(ledger.stats.oldestEnqueuedAtMs == 10)
        _ = try ledger.acknowledge(through: 1)
        #expect(ledger.needsUnreadPeek)
        ledger.peeked(enqueuedAtMs: 20)
        #expect(ledger.stats.oldestEnqueuedAtMs == 20)
    }
}
