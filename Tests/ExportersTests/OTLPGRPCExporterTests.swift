import GRPCBytes
import GRPCCore
@testable import OTLPWire
import StitchTestSupport
import Testing
import TraceEdge
@testable import Exporters

/// Runs `body` with a gRPC exporter pointed at a fresh scripted grpc-swift server, and shuts both down.
func withGRPCExporter(
    answers: [GRPCTraceTestServer.Answer] = [.ok([])], configure: (inout OTLPGRPCExporterConfiguration) -> Void = { _ in },
    logs: ExportTestLogs = ExportTestLogs(),
    _ body: (OTLPGRPCExporter, GRPCTraceTestServer) async throws -> Void
) async throws {
    let server = GRPCTraceTestServer(answers: answers, serializer: RawBytesCoding(), deserializer: RawBytesCoding())
    let port = try await server.start()
    var configuration = OTLPGRPCExporterConfiguration(endpoint: "http://127.0.0.1:\(port)")
    configure(&configuration)
    let exporter = try OTLPGRPCExporter(configuration: configuration, logger: logs.logger())
    do {
        try await body(exporter, server)
    } catch {
        await exporter.shutdown()
        await server.shutdown()
        throw error
    }
    await exporter.shutdown()
    await server.shutdown()
}

/// `grpc-status-details-bin`: a `google.rpc.Status` whose details hold a `RetryInfo` with `delay`.
func retryInfoDetails(code: Int32, delay: Duration) -> Metadata {
    let (seconds, attoseconds) = delay.components
    var duration = WireWriter()
    duration.int64Field(1, seconds)
    duration.int32Field(2, Int32(attoseconds / 1_000_000_000))
    var retryInfo = WireWriter()
    retryInfo.bytesField(1, duration.bytes)
    var any = WireWriter()
    any.stringField(1, ProtobufResponses.retryInfoTypeURL)
    any.bytesField(2, retryInfo.bytes)
    var status = WireWriter()
    status.int32Field(1, code)
    status.stringField(2, "slow down")
    status.bytesField(3, any.bytes)
    var metadata = Metadata()
    metadata.addBinary(status.bytes, forKey: "grpc-status-details-bin")
    return metadata
}

@Suite("OTLPGRPCExporter", .timeLimit(.minutes(1)))
struct OTLPGRPCExporterTests {
    @Test("sends TraceService/Export with the same span bytes, gzip-compressed per message")
    func deliversTheSameSpans() async throws {
        let trace = try ExportTestTraces.stitchedFixtureTrace()
        try await withGRPCExporter { exporter, server in
            #expect(await exporter.deliver([trace]) == .delivered)
            let call = try #require(server.calls.first)
            #expect(call.value("grpc-encoding") == "gzip")
            #expect(call.value("content-type")?.hasPrefix("application/grpc") == true)
            let decoded = try OTLPTraceDecoder.decode(call.message, experimentID: nil)
            #expect(decoded.payload.resources.map(\.serviceName) == ["service-b", "service-a"])
            #expect(decoded.spans.map(\.spanID) == trace.spans.map(\.spanID))
            for (sent, original) in zip(decoded.spans, trace.spans) {
                #expect(Array(call.message[sent.spanBytes]) == Array(original.payload.bytes[original.spanBytes]))
            }
        }
    }

    @Test("compression none sends the encoded request uncompressed")
    func uncompressed() async throws {
        let trace = try ExportTestTraces.stitchedFixtureTrace(serviceBFirst: false)
        try await withGRPCExporter(configure: { $0.compression = .none }) { exporter, server in
            #expect(await exporter.deliver([trace]) == .delivered)
            let call = try #require(server.calls.first)
            #expect(call.value("grpc-encoding") == nil)
            #expect(call.message == (try Fixtures.bytes("03")))
        }
    }

    @Test("headers arrive as metadata with lowercase keys, and are never logged or described")
    func metadataHeaders() async throws {
        let logs = ExportTestLogs()
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withGRPCExporter(
            answers: [.ok([]), .error(RPCError(code: .unauthenticated, message: "who are you"))],
            configure: { $0.headers = ["Authorization": "Bearer s3cr3t", "x-mlflow-experiment-id": "7"] }, logs: logs
        ) { exporter, server in
            #expect(await exporter.deliver([trace]) == .delivered)
            let denied = await exporter.deliver([trace])
            #expect(denied.permanent != nil)
            #expect(server.calls.allSatisfy { $0.value("authorization") == "Bearer s3cr3t" && $0.value("x-mlflow-experiment-id") == "7" })
            #expect(!logs.lines.isEmpty)
            for text in logs.lines.map(\.text) + ["\(denied)", exporter.configuration.description] {
                #expect(!text.contains("s3cr3t"))
            }
        }
    }

    @Test("the spec's retryable codes are retryable", arguments: [
        RPCError.Code.cancelled, .deadlineExceeded, .aborted, .outOfRange, .unavailable, .dataLoss,
    ])
    func retryableCodes(code: RPCError.Code) async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 2)
        try await withGRPCExporter(answers: [.error(RPCError(code: code, message: "try later"))]) { exporter, _ in
            let (reason, after) = try #require(await exporter.deliver([trace]).retryable)
            #expect(reason == "gRPC \(OTLPGRPCExporter.codeName(code)): try later")
            #expect(after == nil)
        }
    }

    @Test("RetryInfo's retry_delay is honoured; RESOURCE_EXHAUSTED is retryable only with it")
    func retryInfo() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        let throttled = RPCError(code: .resourceExhausted, message: "slow down",
                                 metadata: retryInfoDetails(code: 8, delay: .milliseconds(2500)))
        let unavailable = RPCError(code: .unavailable, message: "busy", metadata: retryInfoDetails(code: 14, delay: .seconds(7)))
        let exhausted = RPCError(code: .resourceExhausted, message: "message too large")
        try await withGRPCExporter(answers: [.error(throttled), .error(unavailable), .error(exhausted)]) { exporter, _ in
            #expect(await exporter.deliver([trace]) == .retryable(reason: "gRPC RESOURCE_EXHAUSTED: slow down", after: .milliseconds(2500)))
            #expect(await exporter.deliver([trace]) == .retryable(reason: "gRPC UNAVAILABLE: busy", after: .seconds(7)))
            let (reason, response) = try #require(await exporter.deliver([trace]).permanent)
            #expect(reason.contains("RESOURCE_EXHAUSTED"))
            #expect(response == "gRPC RESOURCE_EXHAUSTED: message too large")
        }
    }

    @Test("every other code is permanent and keeps the server's message", arguments: [
        RPCError.Code.unknown, .invalidArgument, .notFound, .alreadyExists, .permissionDenied, .unauthenticated,
        .failedPrecondition, .unimplemented, .internalError,
    ])
    func permanentCodes(code: RPCError.Code) async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 2)
        try await withGRPCExporter(answers: [.error(RPCError(code: code, message: "no good"))]) { exporter, server in
            let (reason, response) = try #require(await exporter.deliver([trace]).permanent)
            #expect(reason == "rejected by the OTLP endpoint (gRPC \(OTLPGRPCExporter.codeName(code)))")
            #expect(response == "gRPC \(OTLPGRPCExporter.codeName(code)): no good")
            #expect(server.calls.count == 1)
        }
    }

    @Test("partial success is reported with its count and message; an empty response is success")
    func partialSuccess() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 4)
        let partial = OTLPResponses.exportResponse(rejectedSpans: 3, errorMessage: "3 spans too old", json: false)
        try await withGRPCExporter(answers: [.ok(partial), .ok([])]) { exporter, _ in
            #expect(await exporter.deliver([trace]) == .partiallyRejected(rejectedSpans: 3, message: "3 spans too old"))
            #expect(await exporter.deliver([trace]) == .delivered)
        }
    }

    @Test("a server that does not answer within the timeout is retryable (DEADLINE_EXCEEDED)")
    func timeout() async throws {
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withGRPCExporter(answers: [.hang(seconds: 30)], configure: { $0.timeout = .milliseconds(300) }) { exporter, _ in
            let start = ContinuousClock.now
            let (reason, after) = try #require(await exporter.deliver([trace]).retryable)
            #expect(reason.hasPrefix("gRPC DEADLINE_EXCEEDED"))
            #expect(after == nil)
            #expect(ContinuousClock.now - start < .seconds(15), "gave up at the deadline, not when the server answered")
        }
    }

    @Test("a server that is down is retryable (UNAVAILABLE), and reached once it is up")
    func serverDown() async throws {
        let port = try await ScriptedHTTPServer.closedPort()
        let exporter = try OTLPGRPCExporter(
            configuration: OTLPGRPCExporterConfiguration(endpoint: "http://127.0.0.1:\(port)", timeout: .seconds(60)),
            logger: ExportTestLogs().logger())
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        let start = ContinuousClock.now
        let (reason, _) = try #require(await exporter.deliver([trace]).retryable)
        #expect(reason.hasPrefix("gRPC UNAVAILABLE"))
        // The deadline is 60 s; a refused connection must be reported long before it (a loaded CI machine took 4.7 s once).
        #expect(ContinuousClock.now - start < .seconds(30), "fails fast, without waiting for the deadline")
        let server = GRPCTraceTestServer(port: port, serializer: RawBytesCoding(), deserializer: RawBytesCoding())
        _ = try await server.start()
        var outcome = await exporter.deliver([trace])
        for _ in 0..<50 where outcome != .delivered {
            try await Task.sleep(for: .milliseconds(100))
            outcome = await exporter.deliver([trace])
        }
        #expect(outcome == .delivered)
        await exporter.shutdown()
        await server.shutdown()
    }

    @Test("a batch over max_request_bytes is sent as several messages, each under it, in order")
    func batchingSplitsAtCap() async throws {
        let traces = try (1...20).map { try ExportTestTraces.synthetic(trace: $0, spanCount: 3, payloadBytes: 1500) }
        let cap = 16 * 1024
        try await withGRPCExporter(configure: { $0.maxRequestBytes = cap }) { exporter, server in
            #expect(await exporter.deliver(traces) == .delivered)
            let calls = server.calls
            #expect(calls.count >= 4)
            #expect(calls.allSatisfy { $0.message.count <= cap })
            let received = try calls.flatMap { try OTLPTraceDecoder.decode($0.message, experimentID: nil).spans }
            #expect(received.map { [$0.traceID.low, $0.spanID.raw] } == traces.flatMap { trace in trace.spans.map { [trace.traceID.low, $0.spanID.raw] } })
        }
    }

    @Test("configuration problems are all reported, without header values")
    func configurationProblems() {
        var configuration = OTLPGRPCExporterConfiguration(
            endpoint: "https://collector:4317/v1/traces", headers: ["grpc-timeout": "1", "bad name": "hunter2\n", "x-bin": "a"])
        configuration.maxRequestBytes = 65 << 20
        configuration.timeout = .zero
        let problems = configuration.problems()
        #expect(problems.count == 9, "\(problems)")
        #expect(!problems.joined().contains("hunter2"))
        #expect(throws: DestinationConfigurationError.self) {
            try OTLPGRPCExporter(configuration: configuration, logger: ExportTestLogs().logger())
        }
        #expect(OTLPGRPCExporterConfiguration(endpoint: "http://collector", headers: ["Authorization": "x"]).problems().isEmpty)
        #expect(OTLPGRPCExporterConfiguration(endpoint: "http://collector").target! == ("collector", 4317))
        #expect(OTLPGRPCExporterConfiguration(endpoint: "http://[::1]:9000/").target! == ("::1", 9000))
    }

    @Test("RetryInfo is read from a google.rpc.Status; other details and bad bytes are not")
    func retryDelayDecoding() {
        let details = retryInfoDetails(code: 14, delay: .seconds(1) + .milliseconds(250))
        let bytes = details[binaryValues: "grpc-status-details-bin"].first { _ in true }!
        #expect(ProtobufResponses.retryDelay(statusDetails: bytes) == .milliseconds(1250))
        #expect(ProtobufResponses.retryDelay(statusDetails: OTLPResponses.status(code: 14, message: "x", json: false)) == nil)
        #expect(ProtobufResponses.retryDelay(statusDetails: [0x1A, 0x05, 0x0A]) == nil)
        var other = WireWriter()
        other.stringField(1, "type.googleapis.com/google.rpc.DebugInfo")
        var status = WireWriter()
        status.bytesField(3, other.bytes)
        #expect(ProtobufResponses.retryDelay(statusDetails: status.bytes) == nil)
    }
}

@Suite("OTLPGRPCExporter lifecycle", .timeLimit(.minutes(1)))
struct OTLPGRPCExporterLifecycleTests {
    @Test("shutdown right after opening, and shutdown after calls, both return and log nothing")
    func shutdown() async throws {
        let logs = ExportTestLogs()
        let idle = try OTLPGRPCExporter(configuration: OTLPGRPCExporterConfiguration(endpoint: "http://127.0.0.1:1"), logger: logs.logger())
        await idle.shutdown()
        let trace = try ExportTestTraces.synthetic(trace: 1, spanCount: 1)
        try await withGRPCExporter(logs: logs) { exporter, _ in
            #expect(await exporter.deliver([trace]) == .delivered)
        }
        #expect(logs.lines.allSatisfy { !$0.text.contains("gRPC client stopped") })
    }
}
