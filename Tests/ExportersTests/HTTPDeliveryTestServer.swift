import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A request as the fake endpoint received it (body as sent on the wire, still compressed).
struct RecordedRequest: Sendable {
    var method: String
    var uri: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// What the fake endpoint answers one request with.
struct ScriptedAnswer: Sendable {
    var status: Int
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    /// Never answer (the client's timeout has to end the request).
    var hangs = false

    static func status(_ status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) -> ScriptedAnswer {
        ScriptedAnswer(status: status, headers: headers, body: body)
    }

    static let ok = ScriptedAnswer(status: 200, headers: [("content-type", "application/x-protobuf")])
    static let hang = ScriptedAnswer(status: 0, hangs: true)
}

/// An in-process HTTP/1.1 server on 127.0.0.1 whose answers a test scripts: it records every
/// request and answers from `responder`, so exporter tests see the real wire (keep-alive, gzip
/// bodies, headers as sent).
final class ScriptedHTTPServer: Sendable {
    private let responder: @Sendable (RecordedRequest, Int) -> ScriptedAnswer
    private let recorded = Mutex<[RecordedRequest]>([])
    private let connections = Mutex<Int>(0)
    private let channel = Mutex<(any Channel)?>(nil)

    /// `responder` gets each request and its index (0-based, in arrival order).
    init(responder: @escaping @Sendable (RecordedRequest, Int) -> ScriptedAnswer) {
        self.responder = responder
    }

    /// Answers in order; the last answer repeats.
    convenience init(answers: [ScriptedAnswer]) {
        precondition(!answers.isEmpty)
        self.init { _, index in answers[min(index, answers.count - 1)] }
    }

    var requests: [RecordedRequest] { recorded.withLock { $0 } }

    /// TCP connections accepted so far (keep-alive reuses one).
    var connectionCount: Int { connections.withLock { $0 } }

    /// Binds an ephemeral port and returns it.
    func start() async throws -> Int {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                self.connections.withLock { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ScriptedHandler(server: self))
                }
            }
        let channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        self.channel.withLock { $0 = channel }
        return channel.localAddress!.port!
    }

    func shutdown() async {
        let channel = self.channel.withLock { $0 }
        try? await channel?.close()
    }

    fileprivate func answer(_ request: RecordedRequest) -> ScriptedAnswer {
        let index = recorded.withLock { requests in
            requests.append(request)
            return requests.count - 1
        }
        return responder(request, index)
    }

    /// A port with nothing listening on it (bound, then closed).
    static func closedPort() async throws -> Int {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress!.port!
        try await channel.close()
        return port
    }
}

private final class ScriptedHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: ScriptedHTTPServer
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(server: ScriptedHTTPServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let buffer):
            body += buffer.readableBytesView
        case .end:
            guard let head else { return }
            let request = RecordedRequest(
                method: head.method.rawValue, uri: head.uri,
                headers: head.headers.map { ($0.name, $0.value) }, body: body)
            let answer = server.answer(request)
            if answer.hangs { return }
            var headers = HTTPHeaders(answer.headers)
            headers.replaceOrAdd(name: "content-length", value: String(answer.body.count))
            let responseHead = HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: answer.status), headers: headers)
            context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: answer.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
