import Logging
import Metrics
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import Synchronization

/// Where and how the receiver listens.
package struct ReceiverConfiguration: Sendable, Equatable {
    package var host: String
    package var port: Int
    /// Limit on the request body, on the wire and after decompression (OTLP: MUST limit; 413 over it).
    package var maxBodySize: Int
    /// Open connections beyond this are closed at once (and counted).
    package var maxConnections: Int
    /// A connection with no request for this long is closed.
    package var idleConnectionTimeout: TimeAmount

    package init(host: String = "127.0.0.1", port: Int = 4318, maxBodySize: Int = 64 * 1024 * 1024,
                maxConnections: Int = 4096, idleConnectionTimeout: TimeAmount = .seconds(120)) {
        self.host = host
        self.port = port
        self.maxBodySize = maxBodySize
        self.maxConnections = maxConnections
        self.idleConnectionTimeout = idleConnectionTimeout
    }
}

/// OTLP/HTTP on SwiftNIO: `POST /v1/traces` (and `/`) to the export endpoint, everything else to the
/// route handler (health, metrics, query API).
package final class OTLPHTTPServer: Sendable {
    package let configuration: ReceiverConfiguration
    let endpoint: OTLPExportEndpoint
    let routes: any HTTPRouteHandler
    let group: any EventLoopGroup
    let logger: Logger
    let metrics: ReceiverMetrics
    let openConnections = Atomic<Int>(0)
    let state = Mutex<(channel: (any Channel)?, quiesce: ServerQuiescingHelper?)>((nil, nil))

    package init(configuration: ReceiverConfiguration, ingest: any SpanIngest, routes: any HTTPRouteHandler,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger, metrics: ReceiverMetrics) {
        self.configuration = configuration
        self.routes = routes
        self.group = group
        self.logger = logger
        self.metrics = metrics
        self.endpoint = OTLPExportEndpoint(maxBodySize: configuration.maxBodySize, ingest: ingest,
                                           metrics: metrics, logger: logger)
    }

    /// Binds and starts accepting. Returns the bound address (useful with port 0).
    @discardableResult
    package func start() async throws -> SocketAddress {
        let quiesce = ServerQuiescingHelper(group: group)
        let server = self
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelInitializer { channel in
                server.initializeConnection(channel)
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        state.withLock { $0 = (channel, quiesce) }
        guard let address = channel.localAddress else {
            throw ChannelError.unknownLocalAddress
        }
        logger.info("listening", metadata: ["address": "\(address)"])
        return address
    }

    /// Stops accepting, lets in-flight requests finish and closes every connection.
    package func shutdown() async {
        guard let quiesce = state.withLock({ $0.quiesce }) else { return }
        let promise = group.next().makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: promise)
        try? await promise.futureResult.get()
        state.withLock { $0 = (nil, nil) }
    }

    private func initializeConnection(_ channel: any Channel) -> EventLoopFuture<Void> {
        let open = openConnections.add(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { [self] _ in
            _ = openConnections.subtract(1, ordering: .relaxed)
        }
        if open > configuration.maxConnections {
            metrics.connectionsRefused.increment()
            return channel.close()
        }
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(
                IdleStateHandler(readTimeout: configuration.idleConnectionTimeout))
            try channel.pipeline.syncOperations.addHandler(
                HTTPConnectionHandler(endpoint: endpoint, routes: routes, maxBodySize: configuration.maxBodySize))
        }
    }
}

/// One connection's request handling. `HTTPServerPipelineHandler` (added by
/// `configureHTTPServerPipeline`) serializes pipelined requests, so one request is in flight at a time.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        /// Collecting the body of an OTLP export, straight into the array that becomes the request's
        /// payload (the decoded spans keep referring to it): no second buffer and no copy at the end,
        /// which at high rates cost as much in page faults as the decoding itself.
        case collecting(HTTPRequestHead, [UInt8])
        /// Collecting (at most `maxBodySize` of) a body that will be ignored, then answering.
        case discarding(HTTPRequestHead, bodyBytes: Int, response: Pending)
        /// The request is complete; waiting for the answer.
        case responding
    }

    private enum Pending {
        case error(ReceiverError, OTLPExportEndpoint.MediaType?)
        case route(HTTPRequestSummary)
    }

    private let endpoint: OTLPExportEndpoint
    private let routes: any HTTPRouteHandler
    private let maxBodySize: Int
    private var state = State.idle

    init(endpoint: OTLPExportEndpoint, routes: any HTTPRouteHandler, maxBodySize: Int) {
        self.endpoint = endpoint
        self.routes = routes
        self.maxBodySize = maxBodySize
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            begin(context: context, head: head)
        case .body(let chunk):
            switch state {
            case .collecting(let head, var body):
                if body.count + chunk.readableBytes > maxBodySize {
                    state = .responding
                    respond(context: context, head: head,
                            response: endpoint.errorResponse(.bodyTooLarge(limit: maxBodySize, decompressed: false),
                                                             media: .init(contentType: head.headers.first(name: "content-type"))),
                            close: true)
                    return
                }
                state = .idle  // drop the reference so that the append does not copy
                body.append(contentsOf: chunk.readableBytesView)
                state = .collecting(head, body)
            case .discarding(let head, let seen, let pending):
                let total = seen + chunk.readableBytes
                if total > maxBodySize {
                    state = .responding
                    respond(context: context, head: head, response: immediate(pending), close: true)
                } else {
                    state = .discarding(head, bodyBytes: total, response: pending)
                }
            case .idle, .responding:
                break
            }
        case .end:
            switch state {
            case .collecting(let head, let body):
                state = .responding
                let headers = head.headers.map { (name: $0.name, value: $0.value) }
                let bytes = body
                let endpoint = self.endpoint
                dispatch(context: context, head: head) { await endpoint.handle(headers: headers, body: bytes) }
            case .discarding(let head, _, let pending):
                state = .responding
                switch pending {
                case .error:
                    respond(context: context, head: head, response: immediate(pending), close: false)
                case .route(let summary):
                    let routes = self.routes
                    let endpoint = self.endpoint
                    dispatch(context: context, head: head) {
                        // Unknown paths are answered (and counted) like any other refused request.
                        await routes.handle(summary) ?? endpoint.errorResponse(.notFound(summary.path), media: nil)
                    }
                }
            case .idle, .responding:
                break
            }
        }
    }

    private func begin(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let (path, query) = HTTPRequestSummary.split(target: head.uri)
        let headers = head.headers.map { (name: $0.name, value: $0.value) }
        guard OTLPExportEndpoint.paths.contains(path) else {
            let summary = HTTPRequestSummary(method: head.method.rawValue, path: path, query: query, headers: headers)
            state = .discarding(head, bodyBytes: 0, response: .route(summary))
            return
        }
        let contentLength = head.headers.first(name: "content-length").flatMap { Int($0) }
        if let error = endpoint.precheck(method: head.method.rawValue, path: path, headers: headers, contentLength: contentLength) {
            let media = OTLPExportEndpoint.MediaType(contentType: head.headers.first(name: "content-type"))
            if error.httpStatus == 413 {
                // Refuse before reading a body we will not take; the connection cannot be reused.
                state = .responding
                respond(context: context, head: head, response: endpoint.errorResponse(error, media: media), close: true)
            } else {
                state = .discarding(head, bodyBytes: 0, response: .error(error, media))
            }
            return
        }
        var body: [UInt8] = []
        body.reserveCapacity(min(contentLength ?? 16 * 1024, maxBodySize))
        state = .collecting(head, body)
    }

    private func immediate(_ pending: Pending) -> HTTPResponseValue {
        switch pending {
        case .error(let error, let media): endpoint.errorResponse(error, media: media)
        case .route(let summary): .text(413, "request body too large for \(summary.path)\n")
        }
    }

    /// Runs `work` off the event loop and writes its answer back on it.
    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead,
                          _ work: @escaping @Sendable () async -> HTTPResponseValue) {
        let loop = context.eventLoop
        let promise = loop.makePromise(of: HTTPResponseValue.self)
        promise.completeWithTask(work)
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        promise.futureResult.whenSuccess { response in
            bound.value.handler.respond(context: bound.value.context, head: head, response: response, close: false)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, response: HTTPResponseValue, close: Bool) {
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        headers.add(name: "Content-Length", value: String(response.body.count))
        let keepAlive = head.isKeepAlive && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        }
        let done = context.writeAndFlushWithPromise(wrapOutboundOut(.end(nil)))
        state = .idle
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            done.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read, case .idle = state {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension ChannelHandlerContext {
    fileprivate func writeAndFlushWithPromise(_ data: NIOAny) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        writeAndFlush(data, promise: promise)
        return promise.futureResult
    }
}
