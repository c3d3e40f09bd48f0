import Foundation
import StitchTestSupport
import Synchronization
import Testing
import TraceEdge
@testable import Exporters

/// The queue's file I/O runs on its own thread; what others read of it does not wait for that thread.
@Suite("PersistentQueue I/O thread")
struct PersistentQueueIOTests {
    @Test(.timeLimit(.minutes(1)))
    func fullFlagStatsAndGaugesAnswerWhileTheQueueIsHeldInAWrite() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let traces = try QueueTestTraces.numbered(3)
        let recordSize = QueueRecord.Prepared(traces[0]).recordSize
        let clock = QueueTestClock(1_000)
        let metrics = RecordingMetrics()
        let queue = try PersistentQueue.forTest(directory, maxBytes: 2 * recordSize, clock: clock, metrics: metrics)
        #expect(try await queue.append(traces) == 1)

        // Hold the queue as a slow write does: on its I/O thread, with the ledger's lock taken.
        let inside = Atomic<Bool>(false)
        let release = DispatchSemaphore(value: 0)
        async let held: Void = queue.io.run {
            queue.core.withLock { _ in
                inside.store(true, ordering: .releasing)
                release.wait()
            }
        }
        while !inside.load(ordering: .acquiring) { await Task.yield() }
        // An append queued behind the held one waits for it: the writes stay in order on one thread.
        let more = try QueueTestTraces.numbered(1, from: 9)
        async let queued = queue.append(more)

        // Each of these would block on the held lock if it took it.
        #expect(queue.isFull)
        #expect(queue.stats == QueueStats(queuedTraces: 2, queuedBytes: 2 * recordSize, oldestEnqueuedAtMs: 1_000))
        clock.ms = 4_000
        queue.refreshMetrics()
        #expect(metrics["stitch_queue_oldest_age_seconds{destination=test}"] == 3)
        #expect(metrics["stitch_queue_traces{destination=test}"] == 2)

        release.signal()
        try await held
        #expect(try await queued == 1, "still full: refused")
        await queue.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func oldestAgeGaugeGrowsDuringAnOutageWithNoTraffic() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let wall = QueueTestClock(1_000)
        let metrics = RecordingMetrics()
        let queue = try PersistentQueue.forTest(directory, clock: wall, metrics: metrics)
        try await queue.append(QueueTestTraces.numbered(1))
        let gauge = "stitch_queue_oldest_age_seconds{destination=test}"
        #expect(metrics[gauge] == 0)

        // The destination is down: every attempt is retried, nothing is appended, read or acknowledged.
        let clock = ManualClock()
        let down = ScriptedDestination([.retryable(reason: "connection refused", after: nil)])
        let sender = QueueSender(
            destination: down, queue: queue, deadLetters: RecordingDeadLetters(),
            configuration: QueueSenderConfiguration(retryPolicy: RetryPolicy(randomizationFactor: 0),
                                                          gaugeInterval: .seconds(1)),
            clock: clock, logger: ExportTestLogs().logger(), metrics: RecordingMetrics())
        let run = Task { await sender.run() }
        await clock.waitForSleepers(2)  // the back-off and the gauge refresh

        for (wallMs, age) in [(31_000 as Int64, 30.0), (91_000, 90.0)] {
            wall.ms = wallMs
            clock.advance(by: .seconds(1))
            var yields = 0
            while metrics[gauge] != age, yields < 100_000 {
                await Task.yield()
                yields += 1
            }
            #expect(metrics[gauge] == age)
        }
        #expect(queue.stats.queuedTraces == 1, "still queued: nothing was acknowledged")
        run.cancel()
        await run.value
        await queue.close()
    }

    @Test func shutdownLetsSubmittedWorkFinishThenRefusesMore() async throws {
        let thread = FileIOThread(name: "test thread")
        #expect(try await thread.run { 41 + 1 } == 42)
        let started = Atomic<Bool>(false)
        let finished = Atomic<Bool>(false)
        async let submitted: Void = thread.run {
            started.store(true, ordering: .releasing)
            Thread.sleep(forTimeInterval: 0.05)
            finished.store(true, ordering: .releasing)
        }
        while !started.load(ordering: .acquiring) { await Task.yield() }
        await thread.shutdown()
        let done = finished.load(ordering: .acquiring)
        #expect(done, "work under way when shutdown began was done before it returned")
        try await submitted
        await #expect(throws: QueueError.self) { try await thread.run { 1 } }
        await thread.shutdown()  // again: nothing to do
    }

    @Test func acknowledgingAfterShutdownFails() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        try await queue.append(QueueTestTraces.numbered(1))
        let batch = try await queue.take()
        await queue.shutdown()
        await #expect(throws: QueueError.self) { try await queue.acknowledge(through: batch[0].sequence) }
        await #expect(throws: QueueError.self) { try await queue.append(QueueTestTraces.numbered(1)) }
    }
}
