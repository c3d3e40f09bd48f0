import Foundation
import Logging
import OTLPWire
import StitchTestSupport
import Testing
import TraceEdge
@testable import Exporters

/// Runs `body` with a destination pointed at a fresh scripted server, and shuts both down.
func withOTLPDestination(
    answers: [ScriptedAnswer], configure: (inout OTLPHTTPExporterConfiguration) -> Void = { _ in },
    logs: ExportTestLogs = ExportTestLogs(), currentDate: @escaping @Sendable () -> Date = { Date() },
    _ body: (OTLPHTTPExporter, ScriptedHTTPServer) async throws -> Void
) async throws {
    let server = ScriptedHTTPServer(answers: answers)
    let port = try await server.start()
    var configuration = OTLPHTTPExporterConfiguration(endpoint: "http://127.0.0.1:\(port)/v1/traces")
    configure(&configuration)
    let destination = try OTLPHTTPExporter(configuration: configuration, logger: logs.logger(), currentDate: currentDate)
    do {
        try await body(destination, server)
    } catch {
        await destination.shutdown()
        await server.shutdown()
        throw error
    }
    await destination.shutdown()
    await server.shutdown()
}

/// An OTLP `google.rpc.Status` error body.
func rpcStatusBody(_ message: String) -> [UInt8] {
    OTLPResponses.status(code: 3, message: message, json: false)
}

@Suite("OTLPHTTPExporter", .timeLimit(.minutes(1)))
struct OTLPHTTPExporterTests {
    @Test("sends protobuf, gzipped, grouped by the original resources, span bytes copied")
    func gzipBodyDecodesToTheSameSpans() async throws {
        let trace = try ExportTestTraces.stitchedFixtureTrace()
        try await withOTLPDestination(answers: [.ok]) { destination, server in
            #expect(await destination.deliver([trace]) == .delivered)
            let request = try #require(server.requests.first)
            #expect(request.method == "POST")
            #expect(request.uri == "/v1/traces")
            #expect(request.header("content-type") == "application/x-protobuf")
            #expect(request.header("content-encoding") == "gzip")
            let body = try ExportTestTraces.inflate(request)
            #expect(body.count > request.body.count, "the body was compressed")
            let decoded = try OTLPTraceDecoder.decode(body, experimentID: nil)
            // Both services' resources survive, in first-appearance order (service-b arrived first).
            #expect(decoded.payload.resources.map(\.serviceName) == ["service-b", "service-a"])
            #expect(decoded.spans.map(\.spanID) == trace.spans.map(\.spanID))
            for (sent, original) in zip(decoded.spans, trace.spans) {
                #expect(Array(body[sent.spanBytes]) == Array(original.payload.bytes[original.spanBytes]))
            }
            // The resource bytes are the received ones.
            for (index, resource) in decoded.payload.resources.enumerated() {
                let original = trace.spans.first { $0.serviceName == resource.serviceName }!
                #expect(Array(body[resource.resourceBytes]) == Array(original.payload.bytes[original.resource.resourceBytes]), "resource \(index)")
            }
        }
    }

    @Test("compression none sends the encoded request as is")
    func uncompressed() async throws {
        let trace = try ExportTestTraces.stitchedFixtureTrace(serviceBFirst: false)
        try await withOTLPDestination(answers: [.ok], configure: { $0.compression = .none }) { destination, server in
            #expect(await destination.deliver([trace]) == .delivered)
            let request = try #require(server.requests.first)
            #expect(request.header("content-encoding") == nil)
            // Fixture 03 is exactly the ResourceSpans of 01 then 02.
            #expect(request.body == (try Fixtures.bytes("03")))
        }
    }

    @Test("429, 502, 503 and 504 are retryable", arguments: [429, 502, 503, 504])
    func retryableStatuses(status: Int) async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 2)
        try await withOTLPDestination(answers: [.status(status, headers: [("retry-after", "3")])]) { destination, _ in
            let (reason, after) = try #require(await destination.deliver([trace]).retryable)
            #expect(reason.contains("\(status)"))
            #expect(after == .seconds(3))
        }
    }

    @Test("Retry-After as an HTTP-date is read against the injected wall clock")
    func retryAfterHTTPDate() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        let now = Date(timeIntervalSince1970: 784_111_777 - 42)
        try await withOTLPDestination(
            answers: [.status(503, headers: [("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")])],
            currentDate: { now }
        ) { destination, _ in
            #expect(await destination.deliver([trace]) == .retryable(reason: "HTTP 503 Service Unavailable", after: .seconds(42)))
        }
    }

    @Test("other statuses are permanent and keep the server's message", arguments: [400, 401, 403, 404, 413, 500])
    func permanentStatuses(status: Int) async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 2)
        let answer = ScriptedAnswer.status(status, headers: [("content-type", "application/x-protobuf")], body: rpcStatusBody("no good: \(status)"))
        try await withOTLPDestination(answers: [answer]) { destination, server in
            let (reason, response) = try #require(await destination.deliver([trace]).permanent)
            #expect(reason.contains("HTTP \(status)"))
            #expect(response.hasPrefix("HTTP \(status)"))
            #expect(response.contains("no good: \(status)"))
            #expect(server.requests.count == 1)
        }
    }

    @Test("partial success is reported with its count and message")
    func partialSuccess() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 4)
        let body = OTLPResponses.exportResponse(rejectedSpans: 3, errorMessage: "3 spans too old", json: false)
        try await withOTLPDestination(answers: [.status(200, body: body)]) { destination, _ in
            #expect(await destination.deliver([trace]) == .partiallyRejected(rejectedSpans: 3, message: "3 spans too old"))
        }
    }

    @Test("an empty or unparsable 200 body is plain success")
    func plainSuccess() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withOTLPDestination(answers: [.status(200), .status(200, body: [0xFF, 0xFF])]) { destination, _ in
            #expect(await destination.deliver([trace]) == .delivered)
            #expect(await destination.deliver([trace]) == .delivered)
        }
    }

    @Test("connection refused is retryable")
    func connectionRefused() async throws {
        let outcome = try await deliverToClosedPort { port in
            try OTLPHTTPExporter(
                configuration: OTLPHTTPExporterConfiguration(endpoint: "http://127.0.0.1:\(port)/v1/traces"),
                logger: ExportTestLogs().logger())
        }
        let (reason, after) = try #require(outcome.retryable)
        #expect(reason.contains("connection"))
        #expect(after == nil)
    }

    @Test("a server that does not answer within the timeout is retryable")
    func timeout() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withOTLPDestination(answers: [.hang], configure: { $0.timeout = .milliseconds(300) }) { destination, _ in
            let (reason, after) = try #require(await destination.deliver([trace]).retryable)
            #expect(reason.contains("timed out"))
            #expect(after == nil)
        }
    }

    @Test("a batch over max_request_bytes is sent as several requests, each under it")
    func batchingSplitsAtCap() async throws {
        let traces = try (1...20).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 3, payloadBytes: 1500) }
        let cap = 16 * 1024
        try await withOTLPDestination(answers: [.ok], configure: { $0.maxRequestBytes = cap }) { destination, server in
            #expect(await destination.deliver(traces) == .delivered)
            let requests = server.requests
            #expect(requests.count >= 6, "20 × ~4.6 KB of incompressible spans")
            #expect(requests.allSatisfy { $0.body.count <= cap })
            let received = try requests.flatMap { try OTLPTraceDecoder.decode(ExportTestTraces.inflate($0), experimentID: nil).spans }
            #expect(received.map { [$0.traceID.low, $0.spanID.raw] } == traces.flatMap { trace in trace.spans.map { [trace.traceID.low, $0.spanID.raw] } })
            // Keep-alive: one connection for all requests.
            #expect(server.connectionCount == 1)
        }
    }

    @Test("a later request of a split batch failing makes the batch's outcome")
    func splitBatchStopsAtFailure() async throws {
        let traces = try (1...6).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 2, payloadBytes: 3000) }
        try await withOTLPDestination(answers: [.ok, .status(503)], configure: { $0.maxRequestBytes = 8 * 1024 }) { destination, server in
            _ = try #require(await destination.deliver(traces).retryable)
            #expect(server.requests.count == 2, "stops at the first failed request")
        }
    }

    @Test("custom headers are sent and never logged or described")
    func headersNotLogged() async throws {
        let secret = "Bearer s3cr3t-t0ken"
        let logs = ExportTestLogs()
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withOTLPDestination(
            answers: [.ok, .status(401, body: Array("unauthorized".utf8)), .status(503)],
            configure: { $0.headers = ["Authorization": secret, "x-tenant": "acme-secret-tenant"] }, logs: logs
        ) { destination, server in
            _ = await destination.deliver([trace])
            let denied = await destination.deliver([trace])
            let unavailable = await destination.deliver([trace])
            #expect(server.requests.allSatisfy { $0.header("authorization") == secret && $0.header("x-tenant") == "acme-secret-tenant" })
            #expect(!logs.lines.isEmpty, "debug lines were written")
            for line in logs.lines {
                #expect(!line.text.contains("s3cr3t") && !line.text.contains("acme-secret"))
            }
            for text in ["\(denied)", "\(unavailable)", destination.configuration.description] {
                #expect(!text.contains("s3cr3t") && !text.contains("acme-secret"))
            }
            #expect(destination.configuration.description.contains("Authorization: <redacted>"))
        }
    }

    @Test("an endpoint without a path posts to /v1/traces")
    func endpointPath() {
        #expect(OTLPHTTPExporterConfiguration(endpoint: "http://jaeger:4318").resolvedEndpoint == "http://jaeger:4318/v1/traces")
        #expect(OTLPHTTPExporterConfiguration(endpoint: "http://jaeger:4318/").resolvedEndpoint == "http://jaeger:4318/v1/traces")
        #expect(OTLPHTTPExporterConfiguration(endpoint: "https://c.example/otlp/v1/traces").resolvedEndpoint == "https://c.example/otlp/v1/traces")
    }

    @Test("configuration problems are all reported, without header values")
    func configurationProblems() {
        var configuration = OTLPHTTPExporterConfiguration(endpoint: "ftp://", headers: ["content-type": "x", "bad name": "hunter2\n"])
        configuration.maxRequestBytes = 65 << 20
        configuration.timeout = .zero
        let problems = configuration.problems()
        #expect(problems.count == 7, "\(problems)")
        #expect(!problems.joined().contains("hunter2"))
        #expect(throws: DestinationConfigurationError.self) {
            try OTLPHTTPExporter(configuration: configuration, logger: ExportTestLogs().logger())
        }
        #expect(OTLPHTTPExporterConfiguration(endpoint: "https://collector:4318/v1/traces", headers: ["authorization": "x"]).problems().isEmpty)
    }

    @Test("batches are sized to one request")
    func batchLimits() async throws {
        let destination = try OTLPHTTPExporter(
            configuration: OTLPHTTPExporterConfiguration(endpoint: "http://127.0.0.1:1", maxRequestBytes: 1 << 20),
            logger: ExportTestLogs().logger())
        #expect(destination.batchLimits == DeliveryBatchLimits(maxTraces: 512, maxBytes: 1 << 20))
        await destination.shutdown()
    }
}
