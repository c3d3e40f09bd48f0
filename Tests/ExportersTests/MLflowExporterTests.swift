import Foundation
import OTLPWire
import StitchTestSupport
import Synchronization
import Testing
import TraceEdge
@testable import Exporters

/// A fake tracking server: `/v1/traces` and the trace-tag endpoint answer from separate scripts.
func withMLflowExporter(
    spans: [ScriptedAnswer] = [.ok], tags: [ScriptedAnswer] = [.status(200, body: Array("{}".utf8))],
    configure: (inout MLflowExporterConfiguration) -> Void = { _ in },
    metrics: RecordingMetrics = RecordingMetrics(),
    _ body: (MLflowExporter, ScriptedHTTPServer, Int) async throws -> Void
) async throws {
    let counters = CounterPair()
    let server = ScriptedHTTPServer { request, _ in
        if request.uri == "/v1/traces" {
            return spans[min(counters.nextSpans(), spans.count - 1)]
        }
        return tags[min(counters.nextTags(), tags.count - 1)]
    }
    let port = try await server.start()
    var configuration = MLflowExporterConfiguration(trackingURI: "http://127.0.0.1:\(port)")
    configure(&configuration)
    let destination = try MLflowExporter(configuration: configuration, logger: ExportTestLogs().logger(), metrics: metrics)
    do {
        try await body(destination, server, port)
    } catch {
        await destination.shutdown()
        await server.shutdown()
        throw error
    }
    await destination.shutdown()
    await server.shutdown()
}

/// Separate answer indexes for span and tag requests.
private final class CounterPair: Sendable {
    private let counts = Mutex<(spans: Int, tags: Int)>((0, 0))

    func nextSpans() -> Int {
        counts.withLock { counts in
            defer { counts.spans += 1 }
            return counts.spans
        }
    }

    func nextTags() -> Int {
        counts.withLock { counts in
            defer { counts.tags += 1 }
            return counts.tags
        }
    }
}

private struct TagRequest: Decodable, Equatable {
    var key: String
    var value: String
}

@Suite("MLflowExporter", .timeLimit(.minutes(1)))
struct MLflowExporterTests {
    @Test("one request per trace: root's ResourceSpans first, experiment header, Host, then the tags")
    func requestShape() async throws {
        // service-b's spans arrived first; the root is service-a's.
        let trace = try ExportTestTraces.stitchedFixtureTrace(serviceBFirst: true)
        try await withMLflowExporter { destination, server, port in
            #expect(await destination.deliver([trace]) == .delivered)
            let requests = server.requests
            #expect(requests.map(\.method) == ["POST", "PATCH", "PATCH"])
            let spans = requests[0]
            #expect(spans.uri == "/v1/traces")
            #expect(spans.header("x-mlflow-experiment-id") == "1")
            #expect(spans.header("host") == "127.0.0.1:\(port)")
            #expect(spans.header("content-type") == "application/x-protobuf")
            let body = try ExportTestTraces.inflate(spans)
            let decoded = try OTLPTraceDecoder.decode(body, experimentID: nil)
            #expect(decoded.payload.resources.map(\.serviceName) == ["service-a", "service-b"])
            #expect(decoded.spans.first?.isRoot == true)
            #expect(Set(decoded.spans.map(\.spanID)) == Set(trace.spans.map(\.spanID)))
            #expect(decoded.spans.count == trace.spans.count)

            let tagPath = "/api/3.0/mlflow/traces/tr-\(trace.traceID.hex)/tags"
            #expect(requests[1].uri == tagPath && requests[2].uri == tagPath)
            #expect(requests[1].header("content-type") == "application/json")
            let tags = try requests[1...].map { try JSONDecoder().decode(TagRequest.self, from: Data($0.body)) }
            #expect(tags == [
                // The completeness tag last: a reader that sees it knows every tag is set.
                TagRequest(key: "stitch.services", value: "service-a,service-b"),
                TagRequest(key: "stitch.completeness", value: "closed"),
            ])
        }
    }

    @Test("a trace whose root never came is tagged with its release reason", arguments: [ReleaseReason.timeout, .evicted, .shutdown, .tooLarge])
    func incompleteTraceTagged(reason: ReleaseReason) async throws {
        let trace = try ExportTestTraces.synthetic(trace: 5, spanCount: 3, reason: reason)
        try await withMLflowExporter { destination, server, _ in
            #expect(await destination.deliver([trace]) == .delivered)
            let tagRequests = server.requests.filter { $0.method == "PATCH" }
            // One service: no stitch.services.
            #expect(tagRequests.count == 1)
            let tag = try JSONDecoder().decode(TagRequest.self, from: Data(tagRequests[0].body))
            #expect(tag == TagRequest(key: "stitch.completeness", value: reason.rawValue))
        }
    }

    @Test("a late fragment goes alone to the same trace id and sets no tags")
    func lateFragment() async throws {
        let fragment = try ExportTestTraces.synthetic(trace: 6, spanCount: 2, reason: .late)
        try await withMLflowExporter { destination, server, _ in
            #expect(await destination.deliver([fragment]) == .delivered)
            #expect(server.requests.map(\.method) == ["POST"])
            let decoded = try OTLPTraceDecoder.decode(ExportTestTraces.inflate(server.requests[0]), experimentID: nil)
            #expect(decoded.spans.allSatisfy { $0.traceID == fragment.traceID })
        }
    }

    @Test("the experiment: the trace's, else the configured one, else 0")
    func experimentSelection() async throws {
        let named = try ExportTestTraces.synthetic(trace: 1, spanCount: 1, experimentID: "17")
        let unnamed = try ExportTestTraces.synthetic(trace: 2, spanCount: 1)
        try await withMLflowExporter(configure: { $0.experimentID = "9" }) { destination, server, _ in
            _ = await destination.deliver([named])
            _ = await destination.deliver([unnamed])
            #expect(server.requests.filter { $0.method == "POST" }.map { $0.header("x-mlflow-experiment-id") } == ["17", "9"])
        }
        try await withMLflowExporter(configure: { $0.experimentID = "9"; $0.experimentFromTrace = false }) { destination, server, _ in
            _ = await destination.deliver([named])
            #expect(server.requests.first?.header("x-mlflow-experiment-id") == "9")
        }
        try await withMLflowExporter { destination, server, _ in
            _ = await destination.deliver([unnamed])
            #expect(server.requests.first?.header("x-mlflow-experiment-id") == "0")
        }
    }

    @Test("404, 400, 401, 403 and 422 are permanent and name the experiment", arguments: [
        (404, #"{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "No Experiment with id=42 exists"}"#),
        (400, #"{"error_code": "INVALID_PARAMETER_VALUE", "message": "Trace belongs to another experiment"}"#),
        (401, #"{"detail": "unauthorized"}"#),
        (403, #"{"detail": "Invalid Host header"}"#),
        (422, #"{"detail": "Failed to log OpenTelemetry spans"}"#),
    ])
    func permanentAnswers(status: Int, body: String) async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 2, experimentID: "42")
        try await withMLflowExporter(spans: [.status(status, headers: [("content-type", "application/json")], body: Array(body.utf8))]) { destination, server, _ in
            let (reason, response) = try #require(await destination.deliver([trace]).permanent)
            #expect(reason.contains("experiment 42"))
            #expect(response.contains(body))
            #expect(server.requests.count == 1, "no tag request after a refusal")
        }
    }

    @Test("5xx (but 501), 429 and 408 are retryable", arguments: [500, 502, 503, 504, 429, 408])
    func retryableAnswers(status: Int) async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withMLflowExporter(spans: [.status(status, headers: [("retry-after", "2")])]) { destination, _, _ in
            let (reason, after) = try #require(await destination.deliver([trace]).retryable)
            #expect(reason.hasPrefix("HTTP \(status)"))
            #expect(after == .seconds(2))
        }
    }

    @Test("501 (a store without OTLP ingest) is permanent")
    func notImplemented() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withMLflowExporter(spans: [.status(501)]) { destination, _, _ in
            let (reason, _) = try #require(await destination.deliver([trace]).permanent)
            #expect(reason.contains("cannot take OTLP"))
        }
    }

    @Test("connection refused is retryable")
    func connectionRefused() async throws {
        let outcome = try await deliverToClosedPort { port in
            try MLflowExporter(
                configuration: MLflowExporterConfiguration(trackingURI: "http://127.0.0.1:\(port)"),
                logger: ExportTestLogs().logger(), metrics: RecordingMetrics())
        }
        let (reason, _) = try #require(outcome.retryable)
        #expect(reason.contains("connection"))
    }

    @Test("a tag refused for a transient reason retries the trace; otherwise it is counted and the trace is delivered")
    func tagFailures() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withMLflowExporter(tags: [.status(503)]) { destination, _, _ in
            let (reason, _) = try #require(await destination.deliver([trace]).retryable)
            #expect(reason.contains("stitch.completeness"))
        }
        let metrics = RecordingMetrics()
        try await withMLflowExporter(tags: [.status(400, body: Array(#"{"message": "bad tag"}"#.utf8))], metrics: metrics) { destination, _, _ in
            #expect(await destination.deliver([trace]) == .delivered)
            #expect(metrics["stitch_destination_tag_failures_total{destination=mlflow}"] == 1)
        }
    }

    @Test("tags can be switched off")
    func noTags() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1, reason: .timeout)
        try await withMLflowExporter(configure: { $0.setTraceTags = false }) { destination, server, _ in
            #expect(await destination.deliver([trace]) == .delivered)
            #expect(server.requests.map(\.method) == ["POST"])
        }
    }

    @Test("one trace per delivery; URLs keep a tracking URI's path prefix")
    func limitsAndURLs() {
        let configuration = MLflowExporterConfiguration(trackingURI: "https://example.com/mlflow/")
        #expect(configuration.tracesURL == "https://example.com/mlflow/v1/traces")
        #expect(configuration.traceTagURL(mlflowTraceID: "tr-ab") == "https://example.com/mlflow/api/3.0/mlflow/traces/tr-ab/tags")
        #expect(MLflowExporterConfiguration(trackingURI: "mlflow:5000").problems().count >= 1)
        #expect(MLflowExporterConfiguration(trackingURI: "http://x", experimentID: "").problems().count == 1)
    }

    @Test("root-first ordering moves only the root")
    func rootFirst() throws {
        let trace = try ExportTestTraces.stitchedFixtureTrace(serviceBFirst: true)
        let ordered = MLflowExporter.rootFirst(trace.spans)
        let rootIndex = try #require(trace.spans.firstIndex { $0.isRoot })
        var expected = trace.spans.map(\.spanID)
        expected.insert(expected.remove(at: rootIndex), at: 0)
        #expect(ordered.map(\.spanID) == expected)
        #expect(rootIndex != 0, "the fixture's root is not first to begin with")
    }
}

/// Against a real tracking server, when `STITCH_MLFLOW_TRACKING_URI` names one (`http://127.0.0.1:<port>`).
@Suite("MLflowExporter against a real tracking server",
       .enabled(if: ProcessInfo.processInfo.environment["STITCH_MLFLOW_TRACKING_URI"] != nil),
       .timeLimit(.minutes(2)))
struct MLflowExporterRealServerTests {
    private struct TraceInfoResponse: Decodable {
        struct Trace: Decodable { var trace_info: Info }
        struct Info: Decodable {
            var trace_id: String
            var state: String
            var tags: [String: String]
        }
        var trace: Trace
    }

    private func traceInfo(port: Int, _ traceID: String) async throws -> TraceInfoResponse.Info {
        let client = try RawHTTPClient(port: port)
        let response = try await client.request(method: "GET", path: "/api/3.0/mlflow/traces/\(traceID)")
        #expect(response.status == 200, "\(response.text)")
        return try JSONDecoder().decode(TraceInfoResponse.self, from: Data(response.body)).trace.trace_info
    }

    @Test("whole traces, incomplete traces, late roots and unknown experiments")
    func roundTrip() async throws {
        let uri = ProcessInfo.processInfo.environment["STITCH_MLFLOW_TRACKING_URI"]!
        let port = try #require(URL(string: uri)?.port)
        let logs = ExportTestLogs()
        let destination = try MLflowExporter(
            configuration: MLflowExporterConfiguration(trackingURI: uri, experimentID: "0"),
            logger: logs.logger(), metrics: RecordingMetrics())
        let base = UInt64(Date().timeIntervalSince1970 * 1000)

        // A two-service trace whose root's spans arrived last.
        var whole = try ExportTestTraces.synthetic(trace: base, spanCount: 6, services: ["front", "back"])
        whole.spans.reverse()
        #expect(await destination.deliver([whole]) == .delivered)
        let wholeInfo = try await traceInfo(port: port, MLflowExporter.mlflowTraceID(whole.traceID))
        #expect(wholeInfo.state == "OK")
        #expect(wholeInfo.tags["service.name"] == "front")
        #expect(wholeInfo.tags["stitch.completeness"] == "closed")
        #expect(wholeInfo.tags["stitch.services"] == "back,front")

        // The root never came: stored IN_PROGRESS, findable by its tag; then the root comes late.
        let full = try ExportTestTraces.synthetic(trace: base + 1, spanCount: 4, reason: .timeout)
        var rootless = full
        rootless.spans.removeAll(where: \.isRoot)
        #expect(await destination.deliver([rootless]) == .delivered)
        let rootlessID = MLflowExporter.mlflowTraceID(full.traceID)
        let before = try await traceInfo(port: port, rootlessID)
        #expect(before.state == "IN_PROGRESS")
        #expect(before.tags["stitch.completeness"] == "timeout")
        let late = FinishedTrace(traceID: full.traceID, spans: full.spans.filter(\.isRoot), reason: .late, isComplete: false, experimentID: nil)
        #expect(await destination.deliver([late]) == .delivered)
        let after = try await traceInfo(port: port, rootlessID)
        #expect(after.state == "OK")
        #expect(after.tags["stitch.completeness"] == "timeout", "late fragments leave the tag as it was")

        // An experiment that does not exist.
        let unknown = try ExportTestTraces.synthetic(trace: base + 2, spanCount: 1, experimentID: "987654321")
        let outcome = await destination.deliver([unknown])
        await destination.shutdown()
        let (reason, response) = try #require(outcome.permanent)
        #expect(reason.contains("experiment 987654321 does not exist"))
        #expect(response.contains("RESOURCE_DOES_NOT_EXIST"))
        print("MLflow answered an unknown experiment with: \(response)")
    }
}
