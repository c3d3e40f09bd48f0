import NIOCore
import NIOHPACK
import NIOHTTP2
import Receiver

/// The first handler of every OTLP/gRPC HTTP/2 stream, in front of the transport's own: it sees the
/// request as frames before the transport buffers a message, and
///
/// - refuses a message whose declared length is over `max_body_size` at once, with
///   `RESOURCE_EXHAUSTED` (counted), instead of buffering it (the transport's own limit would end the
///   stream with `INTERNAL`);
/// - moves per-message compression (`grpc-encoding: gzip|deflate`) from the transport to the
///   receiver: the header is renamed to `movedEncodingKey` and the messages' compressed flag cleared,
///   so that the bytes reach `OTLPExportEndpoint.export` still compressed and are inflated there with
///   the same hard limit, error answers and counters as an HTTP body (the transport's inflate failure
///   over its limit is an uncounted `INTERNAL`, too);
/// - counts calls to methods that are not served (the transport answers them `UNIMPLEMENTED`).
final class GRPCStreamGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// The metadata key under which the client's `grpc-encoding` reaches the handler.
    static let movedEncodingKey = "stitch-grpc-encoding"

    private let endpoint: OTLPExportEndpoint
    private let metrics: GRPCMetrics
    private let knownPaths: Set<String>
    private var framing = GRPCMessageFraming()
    private var sawRequestHeaders = false
    private var clearCompressedFlag = false
    private var refused = false

    init(endpoint: OTLPExportEndpoint, metrics: GRPCMetrics, knownPaths: Set<String>) {
        self.endpoint = endpoint
        self.metrics = metrics
        self.knownPaths = knownPaths
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // After a refusal the stream is being reset: nothing more reaches the transport.
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .headers(var headers) where !sawRequestHeaders:
            sawRequestHeaders = true
            if let path = headers.headers.first(name: ":path"), !knownPaths.contains(path) {
                _ = endpoint.refuse(.notFound(path))
                metrics.count(.unimplemented)
            }
            // Only the guard may set the moved key.
            headers.headers.remove(name: Self.movedEncodingKey)
            if let encoding = headers.headers.first(name: "grpc-encoding"), encoding.lowercased() != "identity" {
                headers.headers.remove(name: "grpc-encoding")
                headers.headers.add(name: Self.movedEncodingKey, value: encoding)
                clearCompressedFlag = true
            }
            context.fireChannelRead(wrapInboundOut(.headers(headers)))
        case .data(var payload):
            guard case .byteBuffer(var buffer) = payload.data else {
                context.fireChannelRead(data)
                return
            }
            if let declared = framing.scan(&buffer, clearingCompressedFlag: clearCompressedFlag, limit: endpoint.maxBodySize) {
                refuse(context: context, .bodyTooLarge(limit: endpoint.maxBodySize, decompressed: false), declared: declared)
                return
            }
            payload.data = .byteBuffer(buffer)
            context.fireChannelRead(wrapInboundOut(.data(payload)))
        default:
            context.fireChannelRead(data)
        }
    }

    /// Answers trailers-only with the refusal's status, then resets the stream (`NO_ERROR`: the client
    /// stops sending the rest of the message; the answer stands). The transport's handler behind sees
    /// the stream close and cancels the call.
    private func refuse(context: ChannelHandlerContext, _ error: ReceiverError, declared: Int) {
        refused = true
        _ = endpoint.refuse(error)
        let rpcError = OTLPTraceService.rpcError(error)
        metrics.count(.init(rpcError.code))
        var trailers = HPACKHeaders()
        trailers.add(name: ":status", value: "200")
        trailers.add(name: "content-type", value: "application/grpc")
        trailers.add(name: "grpc-status", value: String(rpcError.code.rawValue))
        trailers.add(name: "grpc-message", value: Self.percentEncoded(error.message + " (message of \(declared) bytes)"))
        context.write(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.rstStream(.noError)), promise: nil)
        context.close(promise: nil)
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

/// Follows the gRPC length-prefixed framing across DATA frames (each message: a compressed-flag byte,
/// a 4-byte big-endian length, the message) without buffering anything but a split prefix.
struct GRPCMessageFraming {
    private var prefix: [UInt8] = []
    private var bodyRemaining = 0

    /// Walks `buffer`'s readable bytes. Clears each message's compressed flag when asked. Returns the
    /// declared length of the first message over `limit` (nil when every message so far fits).
    mutating func scan(_ buffer: inout ByteBuffer, clearingCompressedFlag: Bool, limit: Int) -> Int? {
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
            if prefix.isEmpty, clearingCompressedFlag, byte == 1 {
                buffer.setInteger(UInt8(0), at: index)
            }
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
