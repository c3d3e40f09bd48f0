import Foundation
import OTLPWire
import StitchTestSupport
import Testing
import TraceEdge
@testable import Exporters

/// Torn writes, flipped bits and records that cannot be decoded: detected, counted, and confined.
@Suite("PersistentQueue corruption")
struct PersistentQueueCorruptionTests {
    @Test func tornTailIsTruncatedAndEarlierRecordsSurvive() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        for trace in try QueueTestTraces.numbered(3) { try await queue.append([trace]) }
        await queue.close()
        let segment = try #require(try directory.segmentFiles().first)
        let fullSize = try directory.size(segment)
        let recordSize = QueueRecord.Prepared(try QueueTestTraces.numbered(1)[0]).recordSize
        // A crash in the middle of writing the third record.
        try truncate(directory.path + "/" + segment, to: fullSize - recordSize / 2)

        let metrics = RecordingMetrics()
        let reopened = try PersistentQueue.forTest(directory, metrics: metrics)
        #expect(reopened.stats.queuedTraces == 2)
        #expect(metrics["stitch_queue_corrupt_records_total{destination=test}"] == 1)
        #expect(try directory.size(segment) == fullSize - recordSize, "cut back to the last whole record")
        #expect(try await reopened.take().map(\.trace.traceID.low) == [1, 2])
        try await reopened.append(QueueTestTraces.numbered(1, from: 9))
        #expect(try await reopened.take().map(\.trace.traceID.low) == [9])
        await reopened.close()
    }

    @Test func flippedByteInLastRecordIsDetected() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        for trace in try QueueTestTraces.numbered(3) { try await queue.append([trace]) }
        await queue.close()
        let path = directory.path + "/" + (try #require(try directory.segmentFiles().first))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 20] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))

        let metrics = RecordingMetrics()
        let reopened = try PersistentQueue.forTest(directory, metrics: metrics)
        #expect(metrics["stitch_queue_corrupt_records_total{destination=test}"] == 1)
        #expect(try await reopened.take().map(\.trace.traceID.low) == [1, 2])
        await reopened.close()
    }

    @Test func corruptRecordFoundWhileReadingDropsRestOfSegment() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let metrics = RecordingMetrics()
        let recordSize = QueueRecord.Prepared(try QueueTestTraces.numbered(1)[0]).recordSize
        let queue = try PersistentQueue.forTest(directory, segmentBytes: 8 + 3 * recordSize, metrics: metrics)
        for trace in try QueueTestTraces.numbered(4) { try await queue.append([trace]) }
        // Damage record 2 after the append: only reading it can notice (start-up checks are past).
        let path = directory.path + "/segment-00000000000000000001.stq"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[8 + recordSize + 40] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))

        #expect(try await queue.take().map(\.trace.traceID.low) == [1, 4], "2 and 3 share the damaged segment")
        #expect(metrics["stitch_queue_corrupt_records_total{destination=test}"] == 1)
        #expect(metrics["stitch_queue_lost_traces_total{destination=test}"] == 2)
        #expect(queue.stats.queuedTraces == 2)
        try await queue.acknowledge(through: 4)
        #expect(queue.stats == QueueStats())
        await queue.close()
    }

    @Test func undecodableRecordIsSkippedAndAcknowledgedWithItsNeighbours() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        try await queue.append(QueueTestTraces.numbered(1))
        await queue.close()
        // Record 2 checks out (its checksum matches) but holds no decodable OTLP request; record 3 is fine.
        try appendRaw(to: directory, [try undecodable(sequence: 2), try valid(sequence: 3, low: 3)])

        let metrics = RecordingMetrics()
        let reopened = try PersistentQueue.forTest(directory, metrics: metrics)
        #expect(reopened.stats.queuedTraces == 3)
        #expect(try await reopened.take().map(\.sequence) == [1, 3])
        #expect(metrics["stitch_queue_lost_traces_total{destination=test}"] == 1)
        try await reopened.acknowledge(through: 3)
        #expect(reopened.stats == QueueStats())
        await reopened.close()
    }

    @Test func undecodableLastRecordIsSettledWhenItsPredecessorIsAcknowledged() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        try await queue.append(QueueTestTraces.numbered(1))
        await queue.close()
        try appendRaw(to: directory, [try undecodable(sequence: 2)])

        let reopened = try PersistentQueue.forTest(directory)
        #expect(try await reopened.take().map(\.sequence) == [1])
        try await reopened.acknowledge(through: 1)
        #expect(reopened.stats == QueueStats())
        await reopened.close()
        // Nothing is read again after a restart.
        #expect(try PersistentQueue.forTest(directory).stats == QueueStats())
    }

    @Test func fileThatIsNotASegmentIsSetAside() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        try Data("not a queue segment".utf8).write(
            to: URL(fileURLWithPath: directory.path + "/segment-00000000000000000001.stq"))
        let metrics = RecordingMetrics()
        let queue = try PersistentQueue.forTest(directory, metrics: metrics)
        #expect(queue.stats == QueueStats())
        #expect(metrics["stitch_queue_corrupt_records_total{destination=test}"] == 1)
        #expect(try directory.files().contains("segment-00000000000000000001.stq.corrupt"))
        await queue.close()
    }

    @Test func damagedAcknowledgementMarkMeansEverythingIsSentAgain() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        try await queue.append(QueueTestTraces.numbered(3))
        _ = try await queue.take()
        try await queue.acknowledge(through: 2)
        await queue.close()
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: directory.path + "/acknowledged.mark"))
        // At-least-once: with the watermark unreadable, every record still on disk is delivered again.
        let reopened = try PersistentQueue.forTest(directory)
        #expect(try await reopened.take().map(\.sequence) == [1, 2, 3])
        await reopened.close()
    }

    // MARK: Helpers

    private func valid(sequence: UInt64, low: UInt64) throws -> [UInt8] {
        var bytes: [UInt8] = []
        let trace = try QueueTestTraces.numbered(1, from: low)[0]
        QueueRecord.write(QueueRecord.Prepared(trace), sequence: sequence, enqueuedAtMs: 1_000, into: &bytes)
        return bytes
    }

    private func undecodable(sequence: UInt64) throws -> [UInt8] {
        var prepared = QueueRecord.Prepared(try QueueTestTraces.numbered(1)[0])
        // resource_spans (field 1) claiming 5 bytes where 1 follows.
        prepared.request = [0x0A, 0x05, 0x01]
        var bytes: [UInt8] = []
        QueueRecord.write(prepared, sequence: sequence, enqueuedAtMs: 1_000, into: &bytes)
        return bytes
    }

    /// Appends raw records to the (only) segment file.
    private func appendRaw(to directory: QueueTestDirectory, _ records: [[UInt8]]) throws {
        let segment = try #require(try directory.segmentFiles().first)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.path + "/" + segment))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(records.joined()))
        try handle.close()
    }

    private func truncate(_ path: String, to size: Int) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
    }
}
