import Exporters
import Foundation
import Logging
import Metrics
import NIOCore
import OTLPWire
import ServiceLifecycle
@testable import StitchCore
import StitchTestSupport
import Synchronization
import Testing
import TraceAssembler
import TraceEdge
import SQLiteStore
import TraceModel

/// The whole pipeline in-process: receiver on an ephemeral port → assembler → queue → SQLite.
@Suite("Pipeline end to end")
struct PipelineTests {
    func withStitch(flags: [String: String] = [:], _ body: (StitchHarness.Running) async throws -> Void) async throws {
        try await StitchHarness.withStitch(flags: flags, body)
    }

    func poll<T>(_ what: String, _ probe: () async throws -> T?) async throws -> T {
        try await StitchHarness.poll(what, probe)
    }

    func post(_ port: Int, fixture: String, experiment: String? = nil) async throws -> Int {
        var headers = [("Content-Type", "application/x-protobuf")]
        if let experiment { headers.append(("x-mlflow-experiment-id", experiment)) }
        return try await RawHTTPClient(port: port).request(method: "POST", path: "/v1/traces", headers: headers,
                                                           body: try Fixtures.bytes(fixture)).status
    }

    @Test("two services' batches (fixtures 01, 02) are stored as one closed trace")
    func stitchesTwoServices() async throws {
        try await withStitch { stitch in
            #expect(try await post(stitch.port, fixture: "02") == 200)  // the child service first
            #expect(try await post(stitch.port, fixture: "01", experiment: "7") == 200)
            let store = try SQLiteTraceStore(path: stitch.db, readOnly: true)
            let trace = try await poll("the stitched trace") { try store.trace(id: "tr-3bb6c5d66706eddb63619b9d8070258a") }
            #expect(trace.spans.count == 5)
            #expect(trace.info.status == "OK")
            #expect(trace.info.experimentID == "7")
            #expect(trace.info.tags["stitch.completeness"] == "closed")
            #expect(trace.info.tags["stitch.services"] == "service-a,service-b")
            #expect(trace.info.tags["service.name"] == "service-a")
            #expect(Set(trace.spans.compactMap(\.serviceName)) == ["service-a", "service-b"])

            // The same trace over the query API.
            let client = try RawHTTPClient(port: stitch.port)
            let response = try await client.request(method: "GET", path: "/api/v1/traces/tr-3bb6c5d66706eddb63619b9d8070258a")
            #expect(response.status == 200)
            let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            let spans = (object?["data"] as? [String: Any])?["spans"] as? [Any]
            #expect(spans?.count == 5)
            let search = try await client.request(method: "GET", path: "/api/v1/traces?filter=tag.%60stitch.completeness%60%20%3D%20%27closed%27")
            #expect(search.status == 200)
            #expect(search.text.contains("tr-3bb6c5d66706eddb63619b9d8070258a"))
            let badFilter = try await client.request(method: "GET", path: "/api/v1/traces?filter=status%20~%20%27OK%27")
            #expect(badFilter.status == 400)
            let missing = try await client.request(method: "GET", path: "/api/v1/traces/tr-00000000000000000000000000000000")
            #expect(missing.status == 404)
        }
    }

    @Test("graceful shutdown releases what is buffered with reason shutdown and writes it")
    func shutdownFlushes() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stitch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let db = directory.appendingPathComponent("kept.db").path
        try await withStitch(flags: ["db": db]) { stitch in
            // Only the remote server's spans: no root, so the trace cannot close on its own.
            let status = try await post(stitch.port, fixture: "05")
            #expect(status == 200)
        }
        let store = try SQLiteTraceStore(path: db, readOnly: true)
        let trace = try #require(try store.trace(id: "tr-6507f72c0238f76e29de51e9d9c6b191"))
        #expect(trace.spans.count == 2)
        #expect(trace.info.tags["stitch.completeness"] == "shutdown")
        #expect(trace.info.status == "IN_PROGRESS")
    }

    @Test("/healthz and /metrics are served; metrics count requests and released traces")
    func operations() async throws {
        try await withStitch { stitch in
            let client = try RawHTTPClient(port: stitch.port)
            #expect(try await client.request(method: "GET", path: "/healthz").status == 200)
            #expect(try await post(stitch.port, fixture: "04") == 200)
            let store = try SQLiteTraceStore(path: stitch.db, readOnly: true)
            _ = try await poll("the trace") { try store.trace(id: "tr-6507f72c0238f76e29de51e9d9c6b191") }
            let metrics = try await client.request(method: "GET", path: "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.text.contains("stitch_spans_received_total{protocol=\"http\"} 1"))
            #expect(metrics.text.contains("stitch_traces_released_total{reason=\"closed\"} 1"))
            #expect(metrics.text.contains("stitch_http_requests_total{status=\"200\"} 1"))
        }
    }

    /// The receiver's edge in front of `destination`, with an assembler that keeps what it takes.
    static func ingest(into destination: RunningDestination) -> (PipelineIngest<ContinuousClock>, TraceAssembler<ContinuousClock>) {
        let assembler = TraceAssembler(configuration: AssemblerConfiguration(), clock: ContinuousClock(),
                                       logger: Logger(label: "test"), metrics: NOOPMetricsHandler.instance,
                                       release: { _ in })
        return (PipelineIngest(assembler: assembler, destinations: [destination], retryAfterSeconds: 4), assembler)
    }

    @Test("when the store's hand-off is full (the store healthy, draining) the receiver answers 429 with Retry-After, keeping nothing")
    func backpressure() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stitch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var stitch = StitchConfiguration()
        stitch.storeQueueMaxBytes = 1024
        let destination = try await RunningDestination.make(
            DestinationConfiguration(name: "store", kind: .store(path: directory.appendingPathComponent("s.db").path)),
            stitch: stitch, logger: Logger(label: "test"), metrics: NOOPMetricsHandler.instance)
        let queue = destination.handoff
        let (ingest, assembler) = Self.ingest(into: destination)
        let batch = try OTLPTraceDecoder.decode(try Fixtures.bytes("01"), experimentID: nil)
        #expect(await ingest.ingest(batch) == .accepted)
        #expect(await assembler.stats.bufferedSpans == 3)

        // Fill the queue past its limit with a finished trace nobody drains.
        let filler = FinishedTrace(traceID: TraceID(high: 1, low: 1), spans: Array(repeating: batch.spans[0], count: 10),
                                   reason: .closed, isComplete: true, experimentID: nil)
        queue.enqueue([filler, filler])
        #expect(queue.isFull)
        let decision = await ingest.ingest(try OTLPTraceDecoder.decode(try Fixtures.bytes("02"), experimentID: nil))
        guard case .refused(let error) = decision else {
            Issue.record("accepted while the queue is full")
            return
        }
        #expect(error.httpStatus == 429)
        #expect(error.retryAfterSeconds == 4)
        #expect(await assembler.stats.bufferedSpans == 3)

        // Draining the queue lifts the refusal.
        let taken = await queue.next(maxTraces: 10) ?? []
        queue.completed(taken)
        #expect(!queue.isFull)
        #expect(await ingest.ingest(try OTLPTraceDecoder.decode(try Fixtures.bytes("02"), experimentID: nil)) == .accepted)
    }

    @Test("when a forwarding destination's disk queue is full the receiver answers 503 with Retry-After")
    func fullDiskQueue() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stitch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var stitch = StitchConfiguration()
        stitch.queueDirectory = directory.path
        let destination = try await RunningDestination.make(
            DestinationConfiguration(name: "central", kind: .otlp(OTLPHTTPExporterConfiguration(endpoint: "http://127.0.0.1:9")),
                                     queueMaxBytes: 1024),
            stitch: stitch, logger: Logger(label: "test"), metrics: NOOPMetricsHandler.instance)
        let queue = try #require(destination.persistent)
        let (ingest, assembler) = Self.ingest(into: destination)
        let batch = try OTLPTraceDecoder.decode(try Fixtures.bytes("01"), experimentID: nil)
        #expect(await ingest.ingest(batch) == .accepted)

        let filler = FinishedTrace(traceID: TraceID(high: 1, low: 1), spans: Array(repeating: batch.spans[0], count: 10),
                                   reason: .closed, isComplete: true, experimentID: nil)
        _ = try await queue.append([filler, filler, filler])
        #expect(destination.pressure == .full)
        let decision = await ingest.ingest(batch)
        guard case .refused(let error) = decision else {
            Issue.record("accepted while the disk queue is full")
            return
        }
        #expect(error.httpStatus == 503)
        #expect(error.retryAfterSeconds == 4)
        #expect(await assembler.stats.bufferedSpans == 3, "nothing of the refused request is kept")
        // What the application does once its services stop: the queue, the dead letters and the HTTP client close.
        await destination.close()
    }

    @Test("429 while every destination is only behind in memory, 503 once a disk queue is full, accepted while any takes more")
    func refusalRule() {
        func status(_ pressures: [DestinationPressure]) -> Int? {
            let named = pressures.enumerated().map { (name: "d\($0.offset)", pressure: $0.element) }
            let refusal = PipelineIngest<ContinuousClock>.refusal(named, retryAfterSeconds: 7)
            if let refusal { #expect(refusal.retryAfterSeconds == 7) }
            return refusal?.httpStatus
        }
        #expect(status([]) == nil)
        #expect(status([.accepting]) == nil)
        #expect(status([.behind, .accepting]) == nil, "one slow destination does not stop the others")
        #expect(status([.full, .accepting]) == nil)
        #expect(status([.behind]) == 429)
        #expect(status([.behind, .behind]) == 429)
        #expect(status([.full]) == 503)
        #expect(status([.behind, .full]) == 503)
        #expect(status([.unreachable]) == 503, "a store whose database is down")
        #expect(status([.unreachable, .accepting]) == nil)
        #expect(status([.full, .full]) == 503)
    }
}
