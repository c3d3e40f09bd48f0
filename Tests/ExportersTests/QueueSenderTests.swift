import Foundation
import Logging
import OTLPWire
import Synchronization
import StitchTestSupport
import Testing
import TraceEdge
@testable import Exporters

/// A destination that answers from a script (one outcome per call, the last repeating) and can
/// run a hook before each call.
final class ScriptedDestination: TraceExporter {
    let name = "scripted"
    let batchLimits: DeliveryBatchLimits
    private let outcomes: [DeliveryOutcome]
    private let hook: @Sendable (Int) -> Void
    private let calls = Mutex<[[TraceID]]>([])

    init(_ outcomes: [DeliveryOutcome], batchLimits: DeliveryBatchLimits = .standard, hook: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.outcomes = outcomes
        self.batchLimits = batchLimits
        self.hook = hook
    }

    var deliveries: [[TraceID]] { calls.withLock { $0 } }

    func deliver(_ traces: [FinishedTrace]) async -> DeliveryOutcome {
        let index = calls.withLock { calls in
            calls.append(traces.map(\.traceID))
            return calls.count - 1
        }
        hook(index)
        return outcomes[min(index, outcomes.count - 1)]
    }

    func shutdown() async {}
}

/// The sender under test with its fakes.
struct SenderHarness {
    let clock = ManualClock()
    let metrics = RecordingMetrics()
    let logs = ExportTestLogs()
    let queue: InMemoryDeliveryQueue
    let deadLetters: RecordingDeadLetters
    let sender: QueueSender<ManualClock>

    /// No jitter, so the expected back-off is the policy's plain sequence: 1 s, 1.5 s, 2.25 s, …
    static let policy = RetryPolicy(randomizationFactor: 0)

    init(destination: any TraceExporter, traces: [FinishedTrace], deadLetters: RecordingDeadLetters = RecordingDeadLetters()) {
        queue = InMemoryDeliveryQueue(traces)
        self.deadLetters = deadLetters
        sender = QueueSender(
            destination: destination, queue: queue, deadLetters: deadLetters,
            // No gauge refresh: its sleeps would interleave with the back-off sleeps the tests read.
            configuration: QueueSenderConfiguration(retryPolicy: Self.policy, gaugeInterval: nil),
            clock: clock, logger: logs.logger(), metrics: metrics)
    }

    /// A counter's total; 0 when it was never incremented.
    func metric(_ name: String, _ destination: String) -> Double {
        metrics["stitch_destination_\(name){destination=\(destination)}"] ?? 0
    }
}

@Suite("QueueSender", .timeLimit(.minutes(1)))
struct QueueSenderTests {
    @Test("retries each retryable status with back-off on the clock, then delivers", arguments: [429, 502, 503, 504])
    func retriesRetryableStatuses(status: Int) async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 3)
        try await withOTLPDestination(answers: [.status(status), .status(status), .ok]) { destination, server in
            let harness = SenderHarness(destination: destination, traces: [trace])
            let run = Task { await harness.sender.run() }
            #expect(await harness.clock.nextSleep() == .seconds(1))
            harness.clock.advance(by: .seconds(1))
            #expect(await harness.clock.nextSleep() == .milliseconds(1500))
            harness.clock.advance(by: .milliseconds(1500))
            await run.value
            #expect(server.requests.count == 3)
            #expect(harness.queue.acknowledgedThrough == 1)
            #expect(harness.deadLetters.entries.isEmpty)
            #expect(harness.metric("retries_total", "otlp") == 2)
            #expect(harness.metric("sent_traces_total", "otlp") == 1)
            #expect(harness.metric("sent_spans_total", "otlp") == 3)
            #expect(harness.metrics["stitch_destination_send_seconds{destination=otlp}"] != nil, "each attempt is timed")
        }
    }

    @Test("Retry-After in seconds sets the wait")
    func retryAfterSeconds() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withOTLPDestination(answers: [.status(503, headers: [("retry-after", "7")]), .ok]) { destination, _ in
            let harness = SenderHarness(destination: destination, traces: [trace])
            let run = Task { await harness.sender.run() }
            #expect(await harness.clock.nextSleep() == .seconds(7))
            harness.clock.advance(by: .seconds(7))
            await run.value
            #expect(harness.queue.acknowledgedThrough == 1)
        }
    }

    @Test("Retry-After as an HTTP-date sets the wait, relative to the wall clock")
    func retryAfterHTTPDate() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        let now = Date(timeIntervalSince1970: 784_111_777 - 90)
        try await withOTLPDestination(
            answers: [.status(429, headers: [("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]), .ok], currentDate: { now }
        ) { destination, _ in
            let harness = SenderHarness(destination: destination, traces: [trace])
            let run = Task { await harness.sender.run() }
            #expect(await harness.clock.nextSleep() == .seconds(90))
            harness.clock.advance(by: .seconds(90))
            await run.value
            #expect(harness.queue.acknowledgedThrough == 1)
            #expect(harness.metric("retries_total", "otlp") == 1)
        }
    }

    @Test("connection refused is retried until the task is cancelled; nothing is acknowledged")
    func connectionRefusedRetriesUntilCancelled() async throws {
        let port = try await ScriptedHTTPServer.closedPort()
        let destination = try OTLPHTTPExporter(
            configuration: OTLPHTTPExporterConfiguration(endpoint: "http://127.0.0.1:\(port)/v1/traces"),
            logger: ExportTestLogs().logger())
        let harness = SenderHarness(destination: destination, traces: [try ExportTestTraces.synthetic(trace: 1, spanCount: 1)])
        let run = Task { await harness.sender.run() }
        for expected: Duration in [.seconds(1), .milliseconds(1500), .milliseconds(2250)] {
            #expect(await harness.clock.nextSleep() == expected)
            harness.clock.advance(by: expected)
        }
        _ = await harness.clock.nextSleep()
        run.cancel()
        await run.value
        await destination.shutdown()
        #expect(harness.queue.acknowledgedThrough == nil)
        #expect(harness.deadLetters.entries.isEmpty)
        #expect(harness.metric("retries_total", "otlp") == 4)
        #expect(harness.metric("sent_traces_total", "otlp") == 0)
        let warnings = harness.logs.lines.filter { $0.level == .warning }
        #expect(warnings.count == 1, "retrying is logged once per interval")
        #expect(warnings.first?.text.contains("connection") == true)
    }

    @Test("permanent statuses are dead-lettered with the response and acknowledged, never retried", arguments: [400, 401, 404, 413])
    func permanentStatusesDeadLettered(status: Int) async throws {
        let traces = try (1...3).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 2) }
        let answer = ScriptedAnswer.status(status, headers: [("content-type", "application/x-protobuf")], body: rpcStatusBody("refused \(status)"))
        try await withOTLPDestination(answers: [answer]) { destination, server in
            let harness = SenderHarness(destination: destination, traces: traces)
            await harness.sender.run()
            #expect(server.requests.count == 1)
            #expect(harness.clock.sleeps.isEmpty)
            let entry = try #require(harness.deadLetters.entries.first)
            #expect(harness.deadLetters.entries.count == 1)
            #expect(entry.traceIDs == traces.map(\.traceID))
            #expect(entry.response.contains("HTTP \(status)") && entry.response.contains("refused \(status)"))
            #expect(harness.queue.acknowledgedThrough == 3)
            #expect(harness.metric("dead_lettered_traces_total", "otlp") == 3)
            #expect(harness.metric("sent_traces_total", "otlp") == 0)
            #expect(harness.metric("retries_total", "otlp") == 0)
            let errors = harness.logs.lines.filter { $0.level == .error }
            #expect(errors.count == 1)
            #expect(errors.first?.text.contains("HTTP \(status)") == true)
        }
    }

    @Test("partial success is counted and logged, not retried")
    func partialSuccessCounted() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 5)
        let body = OTLPResponses.exportResponse(rejectedSpans: 2, errorMessage: "2 spans dropped", json: false)
        try await withOTLPDestination(answers: [.status(200, body: body)]) { destination, server in
            let harness = SenderHarness(destination: destination, traces: [trace])
            await harness.sender.run()
            #expect(server.requests.count == 1)
            #expect(harness.queue.acknowledgedThrough == 1)
            #expect(harness.metric("partial_rejected_spans_total", "otlp") == 2)
            #expect(harness.metric("sent_traces_total", "otlp") == 1)
            #expect(harness.logs.lines.contains { $0.level == .warning && $0.text.contains("2 spans dropped") })
        }
    }

    @Test("a permanent failure is logged at most once per interval, with the counts in between")
    func permanentLoggingRateLimited() async throws {
        let traces = try (1...5).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 1) }
        let clockBox = Mutex<ManualClock?>(nil)
        let destination = ScriptedDestination(
            [.permanent(reason: "experiment 42 does not exist", response: "HTTP 404")],
            batchLimits: DeliveryBatchLimits(maxTraces: 1, maxBytes: 1 << 20),
            hook: { index in
                // The 4th delivery happens 31 s after the first.
                if index == 3 { clockBox.withLock { $0 }?.advance(by: .seconds(31)) }
            })
        let harness = SenderHarness(destination: destination, traces: traces)
        clockBox.withLock { $0 = harness.clock }
        await harness.sender.run()
        #expect(destination.deliveries.count == 5)
        #expect(harness.deadLetters.entries.count == 5)
        #expect(harness.metric("dead_lettered_traces_total", "scripted") == 5)
        let errors = harness.logs.lines.filter { $0.level == .error }
        #expect(errors.count == 2)
        #expect(errors.allSatisfy { $0.text.contains("experiment 42 does not exist") })
        #expect(errors.last?.metadata.contains("dead_lettered_traces=3") == true, "\(errors.last?.metadata ?? "")")
        #expect(harness.queue.acknowledgedThrough == 5)
    }

    @Test("a failing dead-letter store keeps the batch and tries again after a back-off")
    func deadLetterStoreFailure() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        let destination = ScriptedDestination([.permanent(reason: "bad", response: "HTTP 400")])
        let harness = SenderHarness(destination: destination, traces: [trace], deadLetters: RecordingDeadLetters(failures: 2))
        let run = Task { await harness.sender.run() }
        #expect(await harness.clock.nextSleep() == .seconds(1))
        #expect(harness.queue.acknowledgedThrough == nil)
        harness.clock.advance(by: .seconds(1))
        #expect(await harness.clock.nextSleep() == .milliseconds(1500))
        harness.clock.advance(by: .milliseconds(1500))
        await run.value
        #expect(destination.deliveries.count == 1, "the delivery is not repeated, only the dead-letter write")
        #expect(harness.deadLetters.entries.count == 1)
        #expect(harness.queue.acknowledgedThrough == 1)
    }

    @Test("cancelled while waiting to retry: returns at once, the batch stays queued")
    func cancelDuringBackOff() async throws {
        let destination = ScriptedDestination([.retryable(reason: "503", after: .seconds(60))])
        let harness = SenderHarness(destination: destination, traces: [try ExportTestTraces.synthetic(trace: 1, spanCount: 1)])
        let run = Task { await harness.sender.run() }
        #expect(await harness.clock.nextSleep() == .seconds(60))
        run.cancel()
        await run.value
        #expect(destination.deliveries.count == 1)
        #expect(harness.queue.acknowledgedThrough == nil)
    }

    @Test("batches follow the destination's limits; acknowledgement follows each batch")
    func batchLimitsAndAcknowledgement() async throws {
        let traces = try (1...5).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 1) }
        let destination = ScriptedDestination([.delivered], batchLimits: DeliveryBatchLimits(maxTraces: 2, maxBytes: 1 << 20))
        let harness = SenderHarness(destination: destination, traces: traces)
        await harness.sender.run()
        #expect(harness.queue.batches == [[1, 2], [3, 4], [5]])
        #expect(destination.deliveries == [[traces[0].traceID, traces[1].traceID], [traces[2].traceID, traces[3].traceID], [traces[4].traceID]])
        #expect(harness.queue.requestedMaxTraces.allSatisfy { $0 == 2 })
        #expect(harness.queue.acknowledgedThrough == 5)
        #expect(harness.metric("sent_traces_total", "scripted") == 5)
    }

    @Test("an MLflow destination gets one trace per delivery, and its refusals are dead-lettered per trace")
    func mlflowPerTrace() async throws {
        let good = try ExportTestTraces.synthetic(trace: 1, spanCount: 2, experimentID: "1")
        let unknown = try ExportTestTraces.synthetic(trace: 2, spanCount: 2, experimentID: "42")
        let server = ScriptedHTTPServer { request, _ in
            request.header("x-mlflow-experiment-id") == "42"
                ? .status(404, body: Array(#"{"error_code": "RESOURCE_DOES_NOT_EXIST"}"#.utf8))
                : .ok
        }
        let port = try await server.start()
        let destination = try MLflowExporter(
            configuration: MLflowExporterConfiguration(trackingURI: "http://127.0.0.1:\(port)", setTraceTags: false),
            logger: ExportTestLogs().logger(), metrics: RecordingMetrics())
        let harness = SenderHarness(destination: destination, traces: [good, unknown, good])
        await harness.sender.run()
        await destination.shutdown()
        await server.shutdown()
        #expect(harness.queue.requestedMaxTraces.allSatisfy { $0 == 1 })
        #expect(harness.deadLetters.entries.map(\.traceIDs) == [[unknown.traceID]])
        #expect(harness.deadLetters.entries.first?.reason.contains("experiment 42") == true)
        #expect(harness.metric("sent_traces_total", "mlflow") == 2)
        #expect(harness.metric("dead_lettered_traces_total", "mlflow") == 1)
        #expect(harness.queue.acknowledgedThrough == 3)
        #expect(harness.logs.lines.contains { $0.level == .error && $0.text.contains("experiment 42 does not exist") })
    }

    @Test("with the persistent queue and the dead-letter store: refused batches are on disk with the answer, the queue drains")
    func persistentQueueAndDeadLetterStore() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let logs = ExportTestLogs()
        let queue = try PersistentQueue(
            name: "otlp", configuration: PersistentQueueConfiguration(directory: directory.path + "/queue"),
            logger: logs.logger(), metrics: RecordingMetrics())
        let deadLetters = try DeadLetterStore(
            destination: "otlp", configuration: DeadLetterConfiguration(directory: directory.path + "/dead-letters"),
            logger: logs.logger(), metrics: RecordingMetrics())
        // ~3 KB of spans each: with 4 KiB requests every batch holds one trace.
        let traces = try (1...3).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 2, payloadBytes: 1500) }
        try await queue.append(traces)
        let server = ScriptedHTTPServer { request, _ in
            let spans = (try? OTLPTraceDecoder.decode(ExportTestTraces.inflate(request), experimentID: nil).spans) ?? []
            return spans.contains { $0.traceID == traces[1].traceID }
                ? .status(400, headers: [("content-type", "application/x-protobuf")], body: rpcStatusBody("span too old"))
                : .ok
        }
        let port = try await server.start()
        let destination = try OTLPHTTPExporter(
            configuration: OTLPHTTPExporterConfiguration(endpoint: "http://127.0.0.1:\(port)", maxRequestBytes: 4096),
            logger: logs.logger())
        let clock = ManualClock()
        let metrics = RecordingMetrics()
        let sender = QueueSender(
            destination: destination, queue: queue, deadLetters: deadLetters, clock: clock, logger: logs.logger(), metrics: metrics)
        let run = Task { await sender.run() }
        // Wait (yielding, never sleeping) until everything is acknowledged, then stop the queue.
        while queue.stats.queuedTraces > 0 { await Task.yield() }
        await queue.close()
        await run.value
        await destination.shutdown()
        await server.shutdown()

        #expect(server.requests.count == 3)
        #expect(metrics["stitch_destination_sent_traces_total{destination=otlp}"] == 2)
        #expect(metrics["stitch_destination_dead_lettered_traces_total{destination=otlp}"] == 1)
        let entries = try await deadLetters.entries()
        let entry = try #require(entries.first)
        #expect(entries.count == 1)
        #expect(entry.traceIDs == [traces[1].traceID.hex])
        #expect(entry.response.contains("HTTP 400") && entry.response.contains("span too old"))
        let stored = try OTLPTraceDecoder.decode(await deadLetters.request(of: entry), experimentID: nil)
        #expect(stored.spans.map(\.spanID) == traces[1].spans.map(\.spanID))
    }

    @Test("the log limiter: first at once, then once per interval with what happened between")
    func logRateLimiter() {
        var limiter = LogRateLimiter<TestInstant>(interval: .seconds(30))
        let t0 = TestInstant.zero
        #expect(limiter.record(now: t0, count: 2) == .init(events: 1, count: 2))
        #expect(limiter.record(now: t0.advanced(by: .seconds(10)), count: 3) == nil)
        #expect(limiter.record(now: t0.advanced(by: .seconds(29)), count: 4) == nil)
        #expect(limiter.record(now: t0.advanced(by: .seconds(30)), count: 1) == .init(events: 3, count: 8))
        #expect(limiter.record(now: t0.advanced(by: .seconds(31)), count: 1) == nil)
    }
}
