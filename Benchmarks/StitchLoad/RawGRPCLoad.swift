import Deflate
import Exporters
import GRPCCore
import OTLPWire
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import StitchTestSupport

/// The default gRPC sender: OTLP/gRPC `TraceService/Export` calls written straight as HTTP/2 frames
/// on SwiftNIO's HTTP/2 (HPACK headers, one DATA frame with the length-prefixed message, the
/// answer's `grpc-status` read from its trailers), driven on the connection's event loop like the
/// HTTP/1.1 sender: so that the generator's own cost per call stays as small over gRPC as over HTTP
/// and the comparison measures the receiver. `--grpc-client grpc-swift` sends through grpc-swift's
/// client instead (`GRPCLoad`).
///
/// One HTTP/2 connection per `connections`, one call (stream) in flight on each. The messages are
/// framed (and gzipped with `--gzip`, `grpc-encoding: gzip`) before the timed phase, as the HTTP
/// bodies are. `UNAVAILABLE` and `RESOURCE_EXHAUSTED` are retried after the `RetryInfo` delay in
/// `grpc-status-details-bin`, else the HTTP sender's back-off (50 ms doubling), at most 2 s.
struct RawGRPCLoad: LoadSender {
    var host: String
    var port: Int
    var connections: Int
    var maxAttempts: Int
    var gzip: Bool
    var experimentID: String?
    var group: MultiThreadedEventLoopGroup

    /// The grpc-swift sender's retryable codes, as raw `grpc-status` values.
    static let retryableCodes = Set(GRPCLoad.retryableCodes.map(\.rawValue))
    static let path = "/" + OTLPGRPCExporter.exportMethod.fullyQualifiedMethod

    /// A message as sent: the 5-byte gRPC prefix and the (compressed) message.
    static func framed(_ message: [UInt8], gzip: Bool) -> ByteBuffer {
        let body = gzip ? Deflate.compress(message, format: .gzip) : message
        var buffer = ByteBuffer()
        buffer.reserveCapacity(5 + body.count)
        buffer.writeInteger(UInt8(gzip ? 1 : 0))
        buffer.writeInteger(UInt32(body.count))
        buffer.writeBytes(body)
        return buffer
    }

    func requestHeaders() -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: "POST")
        headers.add(name: ":scheme", value: "http")
        headers.add(name: ":path", value: Self.path)
        headers.add(name: ":authority", value: "\(host):\(port)")
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "te", value: "trailers")
        headers.add(name: "grpc-timeout", value: "30S")
        if gzip { headers.add(name: "grpc-encoding", value: "gzip") }
        headers.add(name: "grpc-accept-encoding", value: "gzip")
        if let experimentID { headers.add(name: "x-mlflow-experiment-id", value: experimentID) }
        return headers
    }

    func runConnection(_ queue: RequestQueue<ByteBuffer>) async -> LoadStats {
        let loop = group.next()
        let outcome = loop.makePromise(of: LoadStats.self)
        let headers = requestHeaders()
        let attempts = maxAttempts
        do {
            // The client's receive window hardly matters (answers are small); 8 MiB as the server's.
            let (channel, multiplexer) = try await HTTP2ClientConnection.open(
                host: host, port: port, group: loop, targetWindowSize: 8 * 1024 * 1024)
            try await channel.eventLoop.submit {
                RawGRPCConnection(channel: channel, multiplexer: multiplexer, queue: queue, headers: headers,
                                  maxAttempts: attempts, outcome: outcome).sendNext()
            }.get()
        } catch {
            var stats = LoadStats()
            stats.connectionErrors += 1
            stats.firstError = "cannot open an HTTP/2 connection to \(host):\(port): \(error)"
            outcome.succeed(stats)
        }
        return (try? await outcome.futureResult.get()) ?? LoadStats()
    }
}

/// One connection's calls, one after another, all on the connection's event loop.
final class RawGRPCConnection {
    private let channel: any Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer
    private let queue: RequestQueue<ByteBuffer>
    private let headers: HPACKHeaders
    private let maxAttempts: Int
    private let outcome: EventLoopPromise<LoadStats>
    private var stats = LoadStats()
    private var finished = false

    init(channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer, queue: RequestQueue<ByteBuffer>, headers: HPACKHeaders,
         maxAttempts: Int, outcome: EventLoopPromise<LoadStats>) {
        self.channel = channel
        self.multiplexer = multiplexer
        self.queue = queue
        self.headers = headers
        self.maxAttempts = maxAttempts
        self.outcome = outcome
        channel.closeFuture.assumeIsolated().whenComplete { [self] _ in
            fail("the connection closed")
        }
    }

    func sendNext() {
        guard !finished else { return }
        guard let claimed = queue.claim() else {
            finish()
            return
        }
        let request = InFlight(index: claimed.index, due: claimed.due, attempts: 1)
        if queue.isRateLimited, claimed.due > .now() {
            channel.eventLoop.assumeIsolated().scheduleTask(deadline: claimed.due) { [self] in send(request) }
        } else {
            send(request)
        }
    }

    private func send(_ request: InFlight) {
        guard !finished else { return }
        let startedAt = NIODeadline.now()
        let message = queue.requests[request.index]
        stats.bytesSent += message.readableBytes
        let loop = channel.eventLoop
        let answer = loop.makePromise(of: CallAnswer.self)
        let created = loop.makePromise(of: (any Channel).self)
        let headers = self.headers
        multiplexer.createStreamChannel(promise: created) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(RawGRPCCall(headers: headers, message: message, answer: answer))
            }
        }
        created.futureResult.whenFailure { answer.fail($0) }
        answer.futureResult.hop(to: loop).assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let call): handle(call, request: request, startedAt: startedAt)
            case .failure(let error): fail("call \(request.index) failed: \(error)")
            }
        }
    }

    private func handle(_ call: CallAnswer, request: InFlight, startedAt: NIODeadline) {
        guard !finished else { return }
        let spans = queue.spans[request.index]
        if call.code == 0 {
            let start = queue.isRateLimited ? request.due : startedAt
            _ = stats.latencyMicros.record(UInt64(max(1, (NIODeadline.now() - start).nanoseconds / 1000)))
            stats.requestsOK += 1
            stats.spansOK += spans
            if queue.duplicates[request.index] { stats.duplicateRequestsOK += 1 }
            sendNext()
            return
        }
        stats.statusCounts[call.code, default: 0] += 1
        if RawGRPCLoad.retryableCodes.contains(call.code), request.attempts < maxAttempts {
            stats.retries += 1
            var retry = request
            retry.attempts += 1
            let delay = retryDelay(attempt: request.attempts, suggested: call.retryDelaySeconds)
            channel.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) { [self] in send(retry) }
            return
        }
        stats.requestsFailed += 1
        stats.spansFailed += spans
        if stats.firstError == nil { stats.firstError = "request \(request.index): grpc-status \(call.code) \(call.message)" }
        sendNext()
    }

    private func fail(_ message: String) {
        guard !finished else { return }
        stats.connectionErrors += 1
        if stats.firstError == nil { stats.firstError = message }
        finish()
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        outcome.succeed(stats)
        channel.close(promise: nil)
    }
}

/// What a call was answered.
struct CallAnswer: Sendable {
    var code: Int
    var message: String
    var retryDelaySeconds: Double?
}

/// One call's stream: writes the request headers and the message (ending the stream), reads the
/// answer's headers, message and trailers (or a trailers-only answer).
final class RawGRPCCall: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let headers: HPACKHeaders
    private let message: ByteBuffer
    private let answer: EventLoopPromise<CallAnswer>
    private var done = false

    init(headers: HPACKHeaders, message: ByteBuffer, answer: EventLoopPromise<CallAnswer>) {
        self.headers = headers
        self.message = message
        self.answer = answer
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(message), endStream: true))), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .headers(let frame) = unwrapInboundIn(data) else { return }
        if let status = frame.headers.first(name: ":status"), status != "200" {
            complete(CallAnswer(code: 2, message: "HTTP status \(status)"))  // UNKNOWN, as gRPC clients map it
            return
        }
        guard let code = frame.headers.first(name: "grpc-status").flatMap(Int.init) else {
            if frame.endStream { complete(CallAnswer(code: 13, message: "the answer has no grpc-status")) }
            return
        }
        // gRPC binary metadata is base64, padded or not.
        let details = frame.headers.first(name: "grpc-status-details-bin").flatMap(Base64.decode)
        let delay = details.flatMap { ProtobufResponses.retryDelay(statusDetails: $0) }
        complete(CallAnswer(code: code, message: frame.headers.first(name: "grpc-message") ?? "",
                            retryDelaySeconds: delay.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            answer.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            answer.fail(error)
        }
        context.close(promise: nil)
    }

    private func complete(_ call: CallAnswer) {
        guard !done else { return }
        done = true
        answer.succeed(call)
    }
}
