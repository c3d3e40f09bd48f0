import Deflate
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCReceiver
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import OTLPWire
import Receiver
import StitchTestSupport
import Synchronization
import Testing

/// The OTLP/gRPC receiver through grpc-swift's own client over the real HTTP/2 transport on 127.0.0.1.
@Suite("OTLP/gRPC receiver")
struct OTLPGRPCServerTests {
    @Test("every fixture exported over gRPC reaches the ingest; the answer is an empty ExportTraceServiceResponse")
    func fixtures() async throws {
        let ingest = RecordingIngest()
        let metrics = RecordingMetrics()
        try await withServer(ingest: ingest, metrics: metrics) { port in
            var expected = 0
            for name in ["01", "02", "04", "05"] {
                let body = try Fixtures.bytes(name)
                expected += try OTLPTraceDecoder.decode(body, experimentID: nil).spans.count
                let response = try await export(port: port, body)
                #expect(try response.get() == [])
            }
            #expect(ingest.spanCount == expected)
            #expect(metrics["stitch_spans_received_total{protocol=grpc}"] == Double(expected))
            #expect(metrics["stitch_grpc_requests_total{code=OK}"] == 4)
        }
    }

    @Test("x-mlflow-experiment-id arrives as metadata and selects the experiment")
    func experiment() async throws {
        let ingest = RecordingIngest()
        try await withServer(ingest: ingest) { port in
            _ = try await export(port: port, try Fixtures.bytes("01"), metadata: ["x-mlflow-experiment-id": "42"]).get()
            #expect(ingest.batches.first?.payload.experimentID == "42")
        }
    }

    @Test("spans with zero ids are rejected: OK with partial_success; the good span is kept")
    func partialSuccess() async throws {
        let ingest = RecordingIngest()
        try await withServer(ingest: ingest) { port in
            let good = "5b8efff798038103d269b633813fc60c"
            let json = """
            {"resourceSpans":[{"scopeSpans":[{"spans":[
              {"traceId":"\(good)","spanId":"eee19b7ec3c1b174","name":"ok","startTimeUnixNano":"1","endTimeUnixNano":"2"},
              {"traceId":"\(good)","spanId":"0000000000000000","name":"zero span id"},
              {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175","name":"zero trace id"}
            ]}]}]}
            """
            let response = try await export(port: port, try OTLPJSON.protobufFromJSON(Array(json.utf8))).get()
            // partial_success (field 1) { rejected_spans (field 1) = 2, error_message (field 2) }.
            #expect(response.count > 4 && response[0] == 0x0A && response[2] == 0x08 && response[3] == 0x02)
            #expect(ingest.spanCount == 1)
        }
    }

    @Test("garbage bytes: INVALID_ARGUMENT, counted as malformed")
    func garbage() async throws {
        let metrics = RecordingMetrics()
        try await withServer(metrics: metrics) { port in
            let result = try await export(port: port, [0xFF, 0xFF, 0xFF, 0x07, 0x01])
            #expect(result.code == .invalidArgument)
            #expect(metrics["stitch_requests_refused_total{protocol=grpc,reason=malformed}"] == 1)
            #expect(metrics["stitch_grpc_requests_total{code=INVALID_ARGUMENT}"] == 1)
        }
    }

    @Test("a message over max_body_size: RESOURCE_EXHAUSTED before it is buffered; the connection serves on")
    func tooLarge() async throws {
        let metrics = RecordingMetrics()
        try await withServer(maxBodySize: 1024, metrics: metrics) { port in
            let result = try await export(port: port, [UInt8](repeating: 0, count: 64 * 1024))
            #expect(result.code == .resourceExhausted)
            #expect(metrics["stitch_requests_refused_total{protocol=grpc,reason=body_too_large}"] == 1)
            #expect(try await export(port: port, try Fixtures.bytes("04")).get() == [])
        }
    }

    @Test("grpc-encoding gzip is inflated within the limit; a gzip bomb is RESOURCE_EXHAUSTED")
    func gzip() async throws {
        let ingest = RecordingIngest()
        try await withServer(maxBodySize: 64 * 1024, ingest: ingest) { port in
            _ = try await export(port: port, try Fixtures.bytes("01"), compression: .gzip).get()
            #expect(ingest.spanCount == 3)
            let bomb = try await export(port: port, [UInt8](repeating: 0, count: 1024 * 1024), compression: .gzip)
            #expect(bomb.code == .resourceExhausted)
        }
    }

    @Test("refusals under pressure: UNAVAILABLE / RESOURCE_EXHAUSTED with google.rpc.RetryInfo")
    func backpressure() async throws {
        for error in [ReceiverError.unavailable("full", retryAfterSeconds: 3), .throttled("slow down", retryAfterSeconds: 2)] {
            let metrics = RecordingMetrics()
            try await withServer(ingest: RecordingIngest(decision: .refused(error)), metrics: metrics) { port in
                let result = try await export(port: port, try Fixtures.bytes("01"))
                let rpcError = try #require(result.error)
                #expect(rpcError.code == (error.retryAfterSeconds == 3 ? .unavailable : .resourceExhausted))
                let details = try #require(rpcError.metadata[binaryValues: "grpc-status-details-bin"].first(where: { _ in true }))
                #expect(details == OTLPResponses.status(code: error.rpcCode, message: error.message,
                                                        retryDelaySeconds: error.retryAfterSeconds))
                // google.rpc.Status.details[0] is an Any naming RetryInfo, whose retry_delay has the seconds.
                #expect(details.containsSubsequence(Array("type.googleapis.com/google.rpc.RetryInfo".utf8)))
                #expect(details.suffix(4) == [0x0A, 0x02, 0x08, UInt8(error.retryAfterSeconds ?? 0)])
                #expect(metrics["stitch_requests_refused_total{protocol=grpc,reason=\(error.reasonLabel)}"] == 1)
                #expect(metrics["stitch_spans_refused_total{protocol=grpc}"] == 3)
            }
        }
    }

    @Test("an unknown method: UNIMPLEMENTED, counted")
    func unknownMethod() async throws {
        let metrics = RecordingMetrics()
        try await withServer(metrics: metrics) { port in
            let result = try await call(port: port, MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.logs.v1.LogsService", method: "Export"), [])
            #expect(result.code == .unimplemented)
            #expect(metrics["stitch_grpc_requests_total{code=UNIMPLEMENTED}"] == 1)
        }
    }

    @Test("grpc.health.v1.Health/Check answers SERVING")
    func health() async throws {
        try await withServer { port in
            let response = try await call(port: port, MethodDescriptor(fullyQualifiedService: "grpc.health.v1.Health", method: "Check"), [])
            #expect(try response.get() == HealthMessages.response(.serving))
        }
    }

    @Test("HTTP/1.1 sent to the gRPC port closes that connection; the next client is served")
    func http1() async throws {
        try await withServer { port in
            let client = try RawHTTPClient(port: port, timeoutSeconds: 1)
            try await client.write(Array("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".utf8))
            // The server may say why first (its SETTINGS and a GOAWAY: a few dozen bytes), then closes.
            var closed = false
            for _ in 0..<200 where !closed { closed = await client.isClosedByPeer() }
            #expect(closed)
            #expect(try await export(port: port, try Fixtures.bytes("04")).get() == [])
        }
    }

    @Test("an address that cannot be bound: ListenerStartupError naming it and why")
    func bindFailure() async throws {
        try await withServer { port in
            let second = OTLPGRPCServer(configuration: GRPCReceiverConfiguration(host: "127.0.0.1", port: port),
                                        ingest: RecordingIngest(), logger: Logger(label: "test"),
                                        metrics: ReceiverMetrics(factory: RecordingMetrics(), protocol: "grpc"))
            await #expect { try await second.serve() } throws: { error in
                guard let error = error as? ListenerStartupError else { return false }
                return error.address == "127.0.0.1:\(port)" && error.reason.contains("in use")
            }
        }
    }
}

// MARK: - helpers

struct CallResult: Sendable {
    var result: Result<[UInt8], RPCError>
    func get() throws -> [UInt8] { try result.get() }
    var error: RPCError? { if case .failure(let error) = result { error } else { nil } }
    var code: RPCError.Code? { error?.code }
}

let exportMethod = MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export")

func export(port: Int, _ body: [UInt8], metadata: Metadata = [:], compression: CompressionAlgorithm? = nil) async throws -> CallResult {
    try await call(port: port, exportMethod, body, metadata: metadata, compression: compression)
}

func call(port: Int, _ method: MethodDescriptor, _ body: [UInt8], metadata: Metadata = [:],
          compression: CompressionAlgorithm? = nil) async throws -> CallResult {
    let transport = try HTTP2ClientTransport.Posix(
        target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext,
        config: .defaults { $0.compression = .init(algorithm: compression ?? .none, enabledAlgorithms: .all) })
    return try await withGRPCClient(transport: transport) { client in
        var options = CallOptions.defaults
        options.compression = compression
        options.timeout = .seconds(10)
        return try await client.unary(request: ClientRequest(message: body, metadata: metadata), descriptor: method,
                                      serializer: BytesCoding(), deserializer: BytesCoding(), options: options) { response in
            CallResult(result: response.accepted.flatMap { $0.message })
        }
    }
}

/// The client side's raw bytes (the test's own, so that the server's coding is not tested with itself).
struct BytesCoding: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}

func withServer(maxBodySize: Int = 64 * 1024 * 1024, ingest: RecordingIngest = RecordingIngest(),
                metrics: RecordingMetrics = RecordingMetrics(), _ body: @Sendable (Int) async throws -> Void) async throws {
    let server = OTLPGRPCServer(
        configuration: GRPCReceiverConfiguration(host: "127.0.0.1", port: 0, maxBodySize: maxBodySize),
        ingest: ingest, logger: Logger(label: "test"), metrics: ReceiverMetrics(factory: metrics, protocol: "grpc"))
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.serve(onListening: { continuation.yield($0) }) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { return }
        do {
            try await body(port)
        } catch {
            server.beginGracefulShutdown()
            throw error
        }
        server.beginGracefulShutdown()
        try await group.waitForAll()
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}

// MARK: - the Export exchange frame by frame

/// Calls whose frames no well-behaved gRPC client sends (truncated, two messages, none, a wrong
/// content type), written with SwiftNIO's HTTP/2 directly, and many calls at once on one connection.
@Suite("OTLP/gRPC receiver, frame by frame")
struct OTLPGRPCFrameTests {
    static let exportPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

    @Test("a message cut short by the end of the stream: INVALID_ARGUMENT; the connection's next call is served")
    func truncated() async throws {
        let metrics = RecordingMetrics()
        try await withServer(metrics: metrics) { port in
            let client = try await RawHTTP2Client(port: port)
            let message = try Fixtures.bytes("01")
            let cut = try await client.call(data: [framed(message).getSlice(at: 0, length: 40)!])
            #expect(cut.grpcStatus == 3)
            #expect(cut.grpcMessage.contains("truncated"))
            let whole = try await client.call(data: [framed(message)])
            #expect(whole.grpcStatus == 0)
            #expect(whole.message == [])
            #expect(metrics["stitch_requests_refused_total{protocol=grpc,reason=malformed}"] == 1)
            try await client.close()
        }
    }

    @Test("a message split over many DATA frames is one message")
    func split() async throws {
        let ingest = RecordingIngest()
        try await withServer(ingest: ingest) { port in
            let client = try await RawHTTP2Client(port: port)
            let whole = framed(try Fixtures.bytes("02"))
            var pieces: [ByteBuffer] = []
            var offset = 0
            while offset < whole.readableBytes {
                let length = min(3 + offset % 7, whole.readableBytes - offset)
                pieces.append(whole.getSlice(at: offset, length: length)!)
                offset += length
            }
            let answer = try await client.call(data: pieces)
            #expect(answer.grpcStatus == 0)
            #expect(ingest.spanCount == (try OTLPTraceDecoder.decode(try Fixtures.bytes("02"), experimentID: nil).spans.count))
            try await client.close()
        }
    }

    @Test("two messages in a unary call, or none: INVALID_ARGUMENT, nothing ingested")
    func messageCount() async throws {
        let ingest = RecordingIngest()
        try await withServer(ingest: ingest) { port in
            let client = try await RawHTTP2Client(port: port)
            let message = try Fixtures.bytes("01")
            let two = try await client.call(data: [framed(message), framed(message)])
            #expect(two.grpcStatus == 3)
            #expect(two.grpcMessage.contains("more than one message"))
            let none = try await client.call(data: [])
            #expect(none.grpcStatus == 3)
            #expect(none.grpcMessage.contains("no gRPC message"))
            #expect(ingest.spanCount == 0)
            try await client.close()
        }
    }

    @Test("a Content-Type that is not application/grpc: HTTP 415, counted")
    func contentType() async throws {
        let metrics = RecordingMetrics()
        try await withServer(metrics: metrics) { port in
            let client = try await RawHTTP2Client(port: port)
            let answer = try await client.call(contentType: "application/json", data: [framed([])])
            #expect(answer.httpStatus == "415")
            #expect(metrics["stitch_requests_refused_total{protocol=grpc,reason=unsupported_media_type}"] == 1)
            try await client.close()
        }
    }

    @Test("grpc-encoding names gzip but the message's flag says uncompressed: taken as it is")
    func uncompressedFlag() async throws {
        let ingest = RecordingIngest()
        try await withServer(ingest: ingest) { port in
            let client = try await RawHTTP2Client(port: port)
            let answer = try await client.call(extraHeaders: [("grpc-encoding", "gzip")], data: [framed(try Fixtures.bytes("01"))])
            #expect(answer.grpcStatus == 0)
            #expect(ingest.spanCount == 3)
            let flagged = try await client.call(data: [framed(try Fixtures.bytes("01"), compressedFlag: 1)])
            #expect(flagged.grpcStatus == 3)
            try await client.close()
        }
    }

    @Test("64 calls at once on one connection (grpc-swift's client): every one answered OK")
    func concurrent() async throws {
        let ingest = RecordingIngest()
        try await withServer(ingest: ingest) { port in
            let body = try Fixtures.bytes("01")
            let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            try await withGRPCClient(transport: transport) { client in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<64 {
                        group.addTask {
                            try await client.unary(request: ClientRequest(message: body), descriptor: exportMethod,
                                                   serializer: BytesCoding(), deserializer: BytesCoding(), options: .defaults) {
                                _ = try $0.message
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(ingest.spanCount == 64 * 3)
        }
    }
}

func framed(_ message: [UInt8], compressedFlag: UInt8 = 0) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(compressedFlag)
    buffer.writeInteger(UInt32(message.count))
    buffer.writeBytes(message)
    return buffer
}

/// What the server answered one raw call.
struct RawAnswer: Sendable {
    var httpStatus = ""
    var grpcStatus: Int?
    var grpcMessage = ""
    /// The response message (without its prefix), when there was one.
    var message: [UInt8]?
}

/// An HTTP/2 connection (prior knowledge, as gRPC's plaintext `http://` is) whose calls are written
/// frame by frame.
struct RawHTTP2Client {
    let channel: any Channel
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    init(port: Int) async throws {
        (channel, multiplexer) = try await HTTP2ClientConnection.open(host: "127.0.0.1", port: port,
                                                                     group: MultiThreadedEventLoopGroup.singleton)
    }

    /// Writes the request headers, then `data` as DATA frames, the last one ending the stream (the
    /// headers end it when there is no data); returns the answer once the server ends the stream.
    func call(path: String = OTLPGRPCFrameTests.exportPath, contentType: String = "application/grpc",
              extraHeaders: [(String, String)] = [], data: [ByteBuffer]) async throws -> RawAnswer {
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: "POST")
        headers.add(name: ":scheme", value: "http")
        headers.add(name: ":path", value: path)
        headers.add(name: ":authority", value: "127.0.0.1")
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "te", value: "trailers")
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        let answer = channel.eventLoop.makePromise(of: RawAnswer.self)
        let stream = try await multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(RawAnswerCollector(answer: answer))
            }
        }.get()
        let frames: [HTTP2Frame.FramePayload] = [.headers(.init(headers: headers, endStream: data.isEmpty))]
            + data.enumerated().map { index, buffer in .data(.init(data: .byteBuffer(buffer), endStream: index == data.count - 1)) }
        for frame in frames { stream.write(frame, promise: nil) }
        stream.flush()
        return try await answer.futureResult.get()
    }

    func close() async throws {
        try await channel.close()
    }
}


final class RawAnswerCollector: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let answer: EventLoopPromise<RawAnswer>
    private var collected = RawAnswer()
    private var body: [UInt8] = []

    init(answer: EventLoopPromise<RawAnswer>) { self.answer = answer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            if let status = frame.headers.first(name: ":status") { collected.httpStatus = status }
            if let code = frame.headers.first(name: "grpc-status") { collected.grpcStatus = Int(code) }
            if let message = frame.headers.first(name: "grpc-message") { collected.grpcMessage = message.removingPercentEncoding() }
            if frame.endStream { finish() }
        case .data(let frame):
            if case .byteBuffer(let buffer) = frame.data { body += buffer.readableBytesView }
            if frame.endStream { finish() }
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
    }

    private func finish() {
        if body.count >= 5 { collected.message = Array(body.dropFirst(5)) }
        answer.succeed(collected)
    }
}

extension String {
    /// `grpc-message` is percent-encoded; the tests compare the text.
    func removingPercentEncoding() -> String {
        var out: [UInt8] = []
        var bytes = Array(utf8)[...]
        while let byte = bytes.popFirst() {
            if byte == UInt8(ascii: "%"), bytes.count >= 2, let value = UInt8(String(decoding: bytes.prefix(2), as: UTF8.self), radix: 16) {
                out.append(value)
                bytes = bytes.dropFirst(2)
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
