import Foundation
import OTLPWire
import StitchTestSupport
import Testing
import TraceEdge
@testable import Exporters

@Suite("PersistentQueue")
struct PersistentQueueTests {
    @Test func roundTripKeepsSpansResourcesAndTraceFields() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let clock = QueueTestClock(1_700_000_000_123)
        let queue = try PersistentQueue.forTest(directory, clock: clock)
        let stitched = try QueueTestTraces.stitched()
        let mlflow = try QueueTestTraces.mlflow()
        #expect(try await queue.append([stitched, mlflow]) == 0)

        let batch = try await queue.take()
        #expect(batch.map(\.sequence) == [1, 2])
        #expect(batch.allSatisfy { $0.enqueuedAtMs == 1_700_000_000_123 })
        for (original, queued) in zip([stitched, mlflow], batch.map(\.trace)) {
            #expect(queued.traceID == original.traceID)
            #expect(queued.reason == original.reason)
            #expect(queued.isComplete == original.isComplete)
            #expect(queued.experimentID == original.experimentID)
            #expect(queued.spans.map(\.spanID) == original.spans.map(\.spanID))
            #expect(QueueTestTraces.spanBytes(queued) == QueueTestTraces.spanBytes(original))
            #expect(QueueTestTraces.resourceBytes(queued) == QueueTestTraces.resourceBytes(original))
            #expect(queued.spans.map(\.serviceName) == original.spans.map(\.serviceName))
            #expect(queued.spans.allSatisfy { $0.payload.experimentID == original.experimentID })
        }
        // The stitched trace keeps both services' resources.
        #expect(Set(batch[0].trace.spans.compactMap(\.serviceName)) == ["service-a", "service-b"])
        await queue.close()
    }

    @Test func segmentsRollOverAndAreDeletedOnlyWhenFullyAcknowledged() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let oneTrace = try QueueTestTraces.numbered(1)
        let recordSize = QueueRecord.Prepared(oneTrace[0]).recordSize
        // Two records fit in a segment; the third starts a new one.
        let queue = try PersistentQueue.forTest(directory, segmentBytes: 8 + 2 * recordSize)
        for trace in try QueueTestTraces.numbered(5) { try await queue.append([trace]) }
        #expect(try directory.segmentFiles() == [
            "segment-00000000000000000001.stq", "segment-00000000000000000003.stq", "segment-00000000000000000005.stq",
        ])
        let batch = try await queue.take()
        #expect(batch.map(\.sequence) == [1, 2, 3, 4, 5])
        #expect(batch.map(\.trace.traceID.low) == [1, 2, 3, 4, 5])

        try await queue.acknowledge(through: 1)
        #expect(try directory.segmentFiles().count == 3, "segment 1 still holds record 2")
        try await queue.acknowledge(through: 3)
        #expect(try directory.segmentFiles() == [
            "segment-00000000000000000003.stq", "segment-00000000000000000005.stq",
        ])
        try await queue.acknowledge(through: 5)
        #expect(try directory.segmentFiles() == ["segment-00000000000000000005.stq"], "the open segment stays")
        #expect(queue.stats == QueueStats())
        await queue.close()
    }

    @Test func restartResumesAfterLastAcknowledgedAndCountsRedeliveries() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let first = try PersistentQueue.forTest(directory)
        try await first.append(QueueTestTraces.numbered(5))
        #expect(try await first.take(4).map(\.sequence) == [1, 2, 3, 4])
        try await first.acknowledge(through: 2)
        await first.close()

        let metrics = RecordingMetrics()
        let second = try PersistentQueue.forTest(directory, metrics: metrics)
        #expect(second.stats.queuedTraces == 3)
        let resumed = try await second.take()
        #expect(resumed.map(\.sequence) == [3, 4, 5])
        #expect(resumed.map(\.trace.traceID.low) == [3, 4, 5])
        // 3 and 4 had been handed out before the restart; 5 had not.
        #expect(metrics["stitch_queue_redelivered_traces_total{destination=test}"] == 2)
        try await second.append(QueueTestTraces.numbered(1, from: 6))
        #expect(try await second.take().map(\.sequence) == [6])
        try await second.acknowledge(through: 6)
        await second.close()

        let third = try PersistentQueue.forTest(directory)
        #expect(third.stats == QueueStats())
        try await third.append(QueueTestTraces.numbered(1, from: 7))
        #expect(try await third.take().map(\.sequence) == [7], "acknowledged sequences are never reused")
        await third.close()
    }

    @Test func fullQueueRefusesNewTracesAndKeepsTheOldest() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let metrics = RecordingMetrics()
        let traces = try QueueTestTraces.numbered(4)
        let recordSize = QueueRecord.Prepared(traces[0]).recordSize
        let queue = try PersistentQueue.forTest(directory, maxBytes: 2 * recordSize + recordSize / 2, metrics: metrics)
        #expect(try await queue.append(Array(traces[0..<3])) == 1)
        #expect(queue.isFull)
        #expect(try await queue.append([traces[3]]) == 1)
        #expect(metrics["stitch_queue_refused_traces_total{destination=test}"] == 2)
        #expect(queue.stats.queuedBytes == 2 * recordSize)

        let batch = try await queue.take()
        #expect(batch.map(\.trace.traceID.low) == [1, 2])
        #expect(queue.isFull, "handed out is not yet freed")
        try await queue.acknowledge(through: batch[0].sequence)
        #expect(!queue.isFull)
        #expect(try await queue.append([traces[3]]) == 0)
        #expect(try await queue.take().map(\.trace.traceID.low) == [4])
        await queue.close()
    }

    @Test func statsAndGaugesReportQueuedTracesBytesAndOldestAge() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let clock = QueueTestClock(1_000)
        let metrics = RecordingMetrics()
        let queue = try PersistentQueue.forTest(directory, clock: clock, metrics: metrics)
        #expect(queue.stats == QueueStats(queuedTraces: 0, queuedBytes: 0, oldestEnqueuedAtMs: nil))
        try await queue.append(QueueTestTraces.numbered(2))
        clock.ms = 5_000
        try await queue.append(QueueTestTraces.numbered(1, from: 3))
        let segment = try #require(try directory.segmentFiles().first)
        let onDisk = try directory.size(segment) - 8  // minus the segment's magic
        #expect(queue.stats == QueueStats(queuedTraces: 3, queuedBytes: onDisk, oldestEnqueuedAtMs: 1_000))

        clock.ms = 11_000
        queue.refreshMetrics()
        #expect(metrics["stitch_queue_traces{destination=test}"] == 3)
        #expect(metrics["stitch_queue_bytes{destination=test}"] == Double(onDisk))
        #expect(metrics["stitch_queue_oldest_age_seconds{destination=test}"] == 10)

        let first = try await queue.take(2)
        try await queue.acknowledge(through: first[1].sequence)
        #expect(queue.stats.oldestEnqueuedAtMs == 5_000, "learned from the unread record's header")
        #expect(metrics["stitch_queue_oldest_age_seconds{destination=test}"] == 6)
        _ = try await queue.take()
        try await queue.acknowledge(through: 3)
        #expect(metrics["stitch_queue_traces{destination=test}"] == 0)
        #expect(metrics["stitch_queue_oldest_age_seconds{destination=test}"] == 0)
        await queue.close()
    }

    @Test func nextHonoursMaxTracesAndMaxBytesButReturnsAtLeastOne() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        let traces = try QueueTestTraces.numbered(5)
        let recordSize = QueueRecord.Prepared(traces[0]).recordSize
        try await queue.append(traces)
        #expect(try await queue.take(2).map(\.sequence) == [1, 2])
        #expect(try await queue.take(10, maxBytes: 2 * recordSize + 1).map(\.sequence) == [3, 4])
        #expect(try await queue.take(10, maxBytes: 1).map(\.sequence) == [5])
        await queue.close()
    }

    @Test func acknowledgingBeyondWhatWasHandedOutThrows() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        try await queue.append(QueueTestTraces.numbered(3))
        _ = try await queue.take(1)
        await #expect(throws: QueueError.self) { try await queue.acknowledge(through: 2) }
        try await queue.acknowledge(through: 1)
        try await queue.acknowledge(through: 1)  // again: nothing to do
        #expect(queue.stats.queuedTraces == 2)
        await queue.close()
    }

    @Test(.timeLimit(.minutes(1))) func closeWakesAWaitingReader() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        async let waiting = queue.next(maxTraces: 10, maxBytes: 1 << 20)
        await queue.untilAReaderWaits()
        await queue.close()
        #expect(await waiting == nil)
        await #expect(throws: QueueError.self) { try await queue.append(QueueTestTraces.numbered(1)) }
    }

    @Test(.timeLimit(.minutes(1))) func appendWakesAWaitingReader() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        async let waiting = queue.next(maxTraces: 10, maxBytes: 1 << 20)
        await queue.untilAReaderWaits()
        try await queue.append(QueueTestTraces.numbered(2))
        #expect(await waiting?.map(\.sequence) == [1, 2])
        await queue.close()
    }

    @Test(.timeLimit(.minutes(1))) func cancellingAWaitingReaderReturnsNil() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        let reader = Task { await queue.next(maxTraces: 10, maxBytes: 1 << 20) }
        await queue.untilAReaderWaits()
        reader.cancel()
        #expect(await reader.value == nil)
        #expect(queue.stats == QueueStats())
        await queue.close()
    }

    @Test func acknowledgingAfterCloseIsKeptForTheNextStart() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        try await queue.append(QueueTestTraces.numbered(3))
        let batch = try await queue.take()
        // Shutdown: the reader finishes delivering what it holds after the queue was closed.
        await queue.close()
        try await queue.acknowledge(through: batch[1].sequence)
        let reopened = try PersistentQueue.forTest(directory)
        #expect(try await reopened.take().map(\.sequence) == [3])
        await reopened.close()
    }

    @Test(.timeLimit(.minutes(1))) func concurrentAppendsAreEachDeliveredOnceInOrder() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let traces = try QueueTestTraces.numbered(1)
        let recordSize = QueueRecord.Prepared(traces[0]).recordSize
        let queue = try PersistentQueue.forTest(directory, segmentBytes: 10 * recordSize, fsync: .never)
        let writers = 4
        let appendsPerWriter = 50
        let total = writers * appendsPerWriter * 2
        let received = try await withThrowingTaskGroup(of: [QueuedTrace].self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for index in 0..<appendsPerWriter {
                        let low = UInt64(writer * 1_000 + index * 2)
                        try await queue.append(QueueTestTraces.numbered(2, from: low))
                    }
                    return []
                }
            }
            group.addTask {
                var received: [QueuedTrace] = []
                while received.count < total, let batch = await queue.next(maxTraces: 7, maxBytes: 1 << 20) {
                    received += batch
                    try await queue.acknowledge(through: batch.last!.sequence)
                }
                return received
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(received.map(\.sequence) == Array(1...UInt64(total)))
        #expect(Set(received.map(\.trace.traceID.low)).count == total)
        #expect(queue.stats == QueueStats())
        #expect(try directory.segmentFiles().count == 1, "every sealed segment was acknowledged and removed")
        await queue.close()
    }

    @Test func invalidConfigurationIsRefusedWithEveryProblem() async throws {
        let configuration = PersistentQueueConfiguration(directory: "", maxBytes: 0, segmentBytes: -1)
        #expect(configuration.problems.count == 3)
        #expect(throws: QueueError.self) {
            try PersistentQueue(name: "bad", configuration: configuration, logger: QueueTestTraces.logger,
                                metrics: RecordingMetrics())
        }
    }
}
