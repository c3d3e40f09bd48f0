import NIOCore
import NIOHPACK
import NIOHTTP2
import OTLPWire
import Receiver

/// The first handler of every OTLP/gRPC HTTP/2 stream, in front of grpc-swift's own.
///
/// `TraceService/Export` is answered here, on the stream's event loop: the message is collected
/// from the DATA frames straight into one array (refused with `RESOURCE_EXHAUSTED` as soon as its
/// declared length is over `max_body_size`), handed to `OTLPExportEndpoint.export` (the decode,
/// limits, counters and pipeline edge of OTLP/HTTP; a compressed message is inflated there with the
/// same hard limit) and the answer is written as the three frames of a unary response (or one
/// trailers-only frame for an error). grpc-swift's server never sees those streams: its per-call
/// machinery (an async task, sequences and writers per call, several hops between the event loop and
/// the task pool) cost more than twice the CPU per span of OTLP/HTTP (`Benchmarks/README.md`).
/// grpc-swift's transport still runs the connection: HTTP/2, settings, flow control, keepalive,
/// idle and graceful shutdown (GOAWAY).
///
/// Every other stream (`grpc.health.v1.Health/Check`, unknown methods, which grpc-swift answers
/// `UNIMPLEMENTED` and this handler counts) passes through, with the message-size refusal.
final class GRPCStreamGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private enum Mode {
        /// No request headers yet.
        case awaitingHeaders
        /// grpc-swift serves the call; message lengths are still checked here.
        case passThrough
        /// An Export call answered here.
        case export(encoding: String?, experiment: String?, forwardedBy: String?)
        /// Answered or refused (or the export is running): nothing more is read.
        case finished
    }

    private let endpoint: OTLPExportEndpoint
    private let metrics: GRPCMetrics
    private let knownPaths: Set<String>
    private let exportPath: String
    private var mode = Mode.awaitingHeaders
    private var framing = GRPCMessageFraming()
    private var message = UnaryMessage()
    private var removed = false

    init(endpoint: OTLPExportEndpoint, metrics: GRPCMetrics, knownPaths: Set<String>, exportPath: String) {
        self.endpoint = endpoint
        self.metrics = metrics
        self.knownPaths = knownPaths
        self.exportPath = exportPath
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        removed = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        switch mode {
        case .awaitingHeaders:
            guard case .headers(let headers) = payload else {
                context.fireChannelRead(data)
                return
            }
            begin(context: context, headers: headers, data: data)
        case .passThrough:
            passThrough(context: context, payload, data: data)
        case .export:
            collect(context: context, payload)
        case .finished:
            // After an answer or a refusal the stream is over: nothing more reaches grpc-swift.
            break
        }
    }

    // MARK: Request headers

    private func begin(context: ChannelHandlerContext, headers frame: HTTP2Frame.FramePayload.Headers, data: NIOAny) {
        let headers = frame.headers
        let path = headers.first(name: ":path") ?? ""
        guard path == exportPath else {
            if !knownPaths.contains(path) {
                _ = endpoint.refuse(.notFound(path))
                metrics.count(.unimplemented)
            }
            mode = .passThrough
            context.fireChannelRead(data)
            return
        }
        // gRPC over HTTP/2, "Requests": POST, and a Content-Type of application/grpc (else HTTP 415).
        let contentType = headers.first(name: "content-type") ?? ""
        guard headers.first(name: ":method") == "POST", Self.isGRPC(contentType: contentType) else {
            _ = endpoint.refuse(.unsupportedGRPCContentType(contentType))
            mode = .finished
            var answer = HPACKHeaders()
            answer.add(name: ":status", value: "415")
            answer.add(name: "content-type", value: "text/plain")
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: answer, endStream: true))), promise: nil)
            return
        }
        let encoding = headers.first(name: "grpc-encoding").flatMap { $0.lowercased() == "identity" ? nil : $0 }
        mode = .export(encoding: encoding, experiment: headers.first(name: "x-mlflow-experiment-id"),
                       forwardedBy: headers.first(name: OTLPExportEndpoint.forwardedByHeader))
        if frame.endStream {
            finish(context: context)
        }
    }

    static func isGRPC(contentType: String) -> Bool {
        let type = (contentType.split(separator: ";", maxSplits: 1).first ?? "").filter { !$0.isWhitespace }.lowercased()
        return type == "application/grpc" || type == "application/grpc+proto"
    }

    // MARK: Export

    private func collect(context: ChannelHandlerContext, _ payload: HTTP2Frame.FramePayload) {
        switch payload {
        case .data(let frame):
            if case .byteBuffer(let buffer) = frame.data {
                do {
                    try message.take(buffer, limit: endpoint.maxBodySize)
                } catch {
                    switch error {
                    case .tooLarge(let declared):
                        refuse(context: context, .bodyTooLarge(limit: endpoint.maxBodySize, decompressed: false),
                               detail: " (message of \(declared) bytes)", reset: true)
                    case .malformed(let detail):
                        refuse(context: context, .malformedBody(detail), detail: "", reset: true)
                    }
                    return
                }
            }
            if frame.endStream { finish(context: context) }
        case .headers(let trailers):
            // Request trailers end the request like END_STREAM on DATA.
            if trailers.endStream { finish(context: context) }
        default:
            break
        }
    }

    /// The request is complete: export its one message, then answer.
    private func finish(context: ChannelHandlerContext) {
        guard case .export(let encoding, let experiment, let forwardedBy) = mode else { return }
        mode = .finished
        let body: [UInt8]
        do {
            body = try message.finished()
        } catch {
            refuse(context: context, .malformedBody(error.detail), detail: "", reset: false)
            return
        }
        // A message whose flag says "not compressed" is taken as it is whatever `grpc-encoding` says.
        let messageEncoding = message.compressed ? encoding : nil
        if message.compressed, messageEncoding == nil {
            refuse(context: context, .malformedBody("the message is flagged compressed but grpc-encoding names no algorithm"),
                   detail: "", reset: false)
            return
        }
        message = UnaryMessage()
        let endpoint = self.endpoint
        let loop = context.eventLoop
        let promise = loop.makePromise(of: ExportOutcome.self)
        promise.completeWithTask {
            await endpoint.export(media: .protobuf, encoding: messageEncoding, experimentHeader: experiment, body: body,
                                  forwardedBy: forwardedBy)
        }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        promise.futureResult.whenSuccess { outcome in
            bound.value.handler.answer(context: bound.value.context, outcome)
        }
    }

    private func answer(context: ChannelHandlerContext, _ outcome: ExportOutcome) {
        guard !removed else { return }  // the client reset the stream meanwhile
        switch outcome {
        case .accepted(let rejectedSpans, let errorMessage):
            metrics.count(.ok)
            let body = OTLPResponses.exportResponse(rejectedSpans: Int64(rejectedSpans), errorMessage: errorMessage, json: false)
            var headers = HPACKHeaders()
            headers.add(name: ":status", value: "200")
            headers.add(name: "content-type", value: "application/grpc")
            headers.add(name: "grpc-accept-encoding", value: "gzip,deflate")
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            var buffer = context.channel.allocator.buffer(capacity: 5 + body.count)
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(body.count))
            buffer.writeBytes(body)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: nil)
            var trailers = HPACKHeaders()
            trailers.add(name: "grpc-status", value: "0")
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
        case .refused(let error):
            writeError(context: context, error, detail: "")
        }
    }

    /// Counts the refusal and answers trailers-only; with `reset` (the client may still be sending
    /// the rest of the request) the stream is then reset with `NO_ERROR`: the client stops sending,
    /// the answer stands.
    private func refuse(context: ChannelHandlerContext, _ error: ReceiverError, detail: String, reset: Bool) {
        mode = .finished
        _ = endpoint.refuse(error)
        writeError(context: context, error, detail: detail)
        if reset {
            context.writeAndFlush(wrapOutboundOut(.rstStream(.noError)), promise: nil)
            context.close(promise: nil)
        }
    }

    /// A trailers-only answer: `grpc-status`, `grpc-message` and, for a throttling refusal, the
    /// `google.rpc.Status` with its `RetryInfo` in `grpc-status-details-bin`.
    private func writeError(context: ChannelHandlerContext, _ error: ReceiverError, detail: String) {
        metrics.count(.init(rawValue: Int(error.rpcCode)) ?? .unknown)
        var trailers = HPACKHeaders()
        trailers.add(name: ":status", value: "200")
        trailers.add(name: "content-type", value: "application/grpc")
        trailers.add(name: "grpc-status", value: String(error.rpcCode))
        trailers.add(name: "grpc-message", value: Self.percentEncoded(error.message + detail))
        if let retryAfter = error.retryAfterSeconds {
            let status = OTLPResponses.status(code: error.rpcCode, message: error.message, retryDelaySeconds: retryAfter)
            trailers.add(name: "grpc-status-details-bin", value: Base64.encode(status))
        }
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
    }

    // MARK: Other methods

    private func passThrough(context: ChannelHandlerContext, _ payload: HTTP2Frame.FramePayload, data: NIOAny) {
        if case .data(let frame) = payload, case .byteBuffer(let buffer) = frame.data,
           let declared = framing.scan(buffer, limit: endpoint.maxBodySize) {
            refuse(context: context, .bodyTooLarge(limit: endpoint.maxBodySize, decompressed: false),
                   detail: " (message of \(declared) bytes)", reset: true)
            return
        }
        context.fireChannelRead(data)
    }

    /// gRPC over HTTP/2, "Responses": `grpc-message` is percent-encoded UTF-8; bytes outside
    /// 0x20–0x7E and `%` itself are escaped.
    static func percentEncoded(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The one length-prefixed message of a unary request (a compressed-flag byte, a 4-byte big-endian
/// length, the message), collected across DATA frames into a single array.
struct UnaryMessage {
    enum Problem: Error, Equatable {
        /// The declared length is over the limit (nothing of it was kept).
        case tooLarge(declared: Int)
        case malformed(String)

        var detail: String {
            switch self {
            case .tooLarge(let declared): "a message of \(declared) bytes"
            case .malformed(let detail): detail
            }
        }
    }

    private var prefix: [UInt8] = []
    private var body: [UInt8] = []
    private var remaining = 0
    private var isComplete = false
    /// The message's compressed flag (meaningful once the prefix is read).
    private(set) var compressed = false

    mutating func take(_ buffer: ByteBuffer, limit: Int) throws(Problem) {
        try buffer.withUnsafeReadableBytes { (bytes: UnsafeRawBufferPointer) throws(Problem) in
            var index = 0
            while index < bytes.count {
                if remaining > 0 {
                    let step = min(remaining, bytes.count - index)
                    body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[index ..< index + step]))
                    index += step
                    remaining -= step
                    if remaining == 0 { isComplete = true }
                    continue
                }
                if isComplete { throw .malformed("a unary call carries more than one message") }
                prefix.append(bytes[index])
                index += 1
                guard prefix.count == 5 else { continue }
                guard prefix[0] <= 1 else { throw .malformed("invalid compressed flag \(prefix[0]) in the message prefix") }
                compressed = prefix[0] == 1
                let length = prefix[1...4].reduce(0) { $0 << 8 | Int($1) }
                if length > limit { throw .tooLarge(declared: length) }
                body.reserveCapacity(length)
                remaining = length
                isComplete = length == 0
            }
        }
    }

    /// The message, once the request has ended.
    func finished() throws(Problem) -> [UInt8] {
        guard isComplete else {
            throw prefix.isEmpty && body.isEmpty && remaining == 0
                ? .malformed("the call carries no gRPC message")
                : .malformed("the request ended inside a gRPC message (truncated)")
        }
        return body
    }
}

/// Follows the gRPC length-prefixed framing across DATA frames without buffering anything but a
/// split prefix, to refuse a message over the limit before grpc-swift buffers it.
struct GRPCMessageFraming {
    private var prefix: [UInt8] = []
    private var bodyRemaining = 0

    /// Walks `buffer`'s readable bytes. Returns the declared length of the first message over
    /// `limit` (nil when every message so far fits).
    mutating func scan(_ buffer: ByteBuffer, limit: Int) -> Int? {
        var index = buffer.readerIndex
        let end = buffer.writerIndex
        while index < end {
            if bodyRemaining > 0 {
                let step = min(bodyRemaining, end - index)
                bodyRemaining -= step
                index += step
                continue
            }
            guard let byte = buffer.getInteger(at: index, as: UInt8.self) else { break }
            prefix.append(byte)
            index += 1
            if prefix.count == 5 {
                let length = prefix[1...4].reduce(0) { $0 << 8 | Int($1) }
                prefix.removeAll(keepingCapacity: true)
                if length > limit { return length }
                bodyRemaining = length
            }
        }
        return nil
    }
}
