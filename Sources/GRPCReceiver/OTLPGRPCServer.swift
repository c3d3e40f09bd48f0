import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOCore
import NIOPosix
import Receiver
import Synchronization

/// Where and how the OTLP/gRPC receiver listens.
package struct GRPCReceiverConfiguration: Sendable, Equatable {
    package var host: String
    package var port: Int
    /// Limit on one message, as sent and after decompression (`RESOURCE_EXHAUSTED` over it).
    package var maxBodySize: Int
    /// Open connections beyond this are closed at once (and counted).
    package var maxConnections: Int
    /// Concurrent calls per connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`).
    package var maxConcurrentStreams: Int
    /// A connection without calls for this long is closed (with a GOAWAY).
    package var idleConnectionTimeout: Duration
    /// HTTP/2 flow control: what a client may send per stream and per connection before the
    /// receiver's WINDOW_UPDATE (the receiver reads every DATA frame at once).
    package var targetWindowSize: Int
    /// The largest HTTP/2 frame the receiver takes (`SETTINGS_MAX_FRAME_SIZE`): how much of one
    /// stream the HTTP/2 parser buffers before the message-size check sees it.
    package var maxFrameSize: Int

    package init(host: String = "127.0.0.1", port: Int = 4317, maxBodySize: Int = 64 * 1024 * 1024,
                maxConnections: Int = 4096, maxConcurrentStreams: Int = 100, idleConnectionTimeout: Duration = .seconds(120),
                targetWindowSize: Int = 8 * 1024 * 1024, maxFrameSize: Int = 1024 * 1024) {
        self.host = host
        self.port = port
        self.maxBodySize = maxBodySize
        self.maxConnections = maxConnections
        self.maxConcurrentStreams = maxConcurrentStreams
        self.idleConnectionTimeout = idleConnectionTimeout
        self.targetWindowSize = targetWindowSize
        self.maxFrameSize = maxFrameSize
    }

    package var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// OTLP/gRPC on grpc-swift 2 and its NIO HTTP/2 transport (plaintext, as `http://host:4317`).
///
/// `serve` runs until `beginGracefulShutdown()` has let the calls in flight finish.
package final class OTLPGRPCServer: Sendable {
    package let configuration: GRPCReceiverConfiguration
    let endpoint: OTLPExportEndpoint
    let receiverMetrics: ReceiverMetrics
    let metrics: GRPCMetrics
    let logger: Logger
    let group: MultiThreadedEventLoopGroup
    let openConnections = Atomic<Int>(0)
    let server = Mutex<GRPCServer<HTTP2ServerTransport.Posix>?>(nil)
    let shutdownRequested = Atomic<Bool>(false)

    /// `metrics` should be made with `protocol: "grpc"`.
    package init(configuration: GRPCReceiverConfiguration, ingest: any SpanIngest,
                group: MultiThreadedEventLoopGroup = .singleton, logger: Logger, metrics: ReceiverMetrics) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.receiverMetrics = metrics
        self.metrics = GRPCMetrics(factory: metrics.factory)
        self.endpoint = OTLPExportEndpoint(maxBodySize: configuration.maxBodySize, ingest: ingest,
                                           metrics: metrics, logger: logger)
    }

    /// Binds, calls `onListening` with the bound port, serves until shut down.
    /// - Throws: `ListenerStartupError` when the address cannot be bound.
    package func serve(onListening: @escaping @Sendable (_ port: Int) -> Void = { _ in }) async throws {
        let address = try resolvedAddress()
        let transport = HTTP2ServerTransport.Posix(
            address: address, transportSecurity: .plaintext, config: transportConfig(), eventLoopGroup: group)
        let server = GRPCServer(transport: transport, services: [OTLPTraceService(metrics: metrics)])
        self.server.withLock { $0 = server }
        let listening = Atomic<Bool>(false)
        do {
            try await withThrowingDiscardingTaskGroup { tasks in
                tasks.addTask { try await server.serve() }
                let bound = try await transport.listeningAddress
                listening.store(true, ordering: .relaxed)
                let port = bound.ipv4?.port ?? bound.ipv6?.port ?? configuration.port
                logger.info("listening", metadata: ["protocol": "grpc", "address": "\(bound)"])
                onListening(port)
                // A shutdown asked for before the server existed.
                if shutdownRequested.load(ordering: .relaxed) { server.beginGracefulShutdown() }
            }
        } catch where !listening.load(ordering: .relaxed) {
            // grpc-swift reports a failed bind as "no listening address bound"; binding the address
            // once more says why (address in use, not permitted, not local).
            let reason = await bindFailure() ?? "\(error)"
            throw ListenerStartupError(listener: "OTLP/gRPC", address: configuration.address, reason: reason)
        }
    }

    /// Why the configured address cannot be bound, from a plain bind attempt (closed at once); nil
    /// if it can be.
    private func bindFailure() async -> String? {
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: configuration.host, port: configuration.port).get()
            try? await channel.close()
            return nil
        } catch let error as IOError {
            return error.description
        } catch {
            return "\(error)"
        }
    }

    /// Stops taking new calls; `serve` returns once the calls in flight are answered.
    package func beginGracefulShutdown() {
        shutdownRequested.store(true, ordering: .relaxed)
        server.withLock { $0 }?.beginGracefulShutdown()
    }

    private func resolvedAddress() throws(ListenerStartupError) -> GRPCNIOTransportCore.SocketAddress {
        do {
            let resolved = try NIOCore.SocketAddress.makeAddressResolvingHost(configuration.host, port: configuration.port)
            guard let ip = resolved.ipAddress else { throw ChannelError.unknownLocalAddress }
            switch resolved {
            case .v6: return .ipv6(host: ip, port: configuration.port)
            default: return .ipv4(host: ip, port: configuration.port)
            }
        } catch {
            throw ListenerStartupError(listener: "OTLP/gRPC", address: configuration.address, reason: "\(error)")
        }
    }

    private func transportConfig() -> HTTP2ServerTransport.Posix.Config {
        let endpoint = self.endpoint
        let metrics = self.metrics
        let paths = OTLPTraceService.paths
        let limit = configuration.maxConnections
        return .defaults { config in
            // Backstop only: GRPCStreamGuard refuses longer messages before the transport buffers them.
            config.rpc.maxRequestPayloadSize = configuration.maxBodySize
            // Compression stays off in the transport: Export messages are inflated by the receiver's
            // bounded inflate; health checks come uncompressed.
            config.compression = .init(enabledAlgorithms: .none)
            config.http2.maxConcurrentStreams = configuration.maxConcurrentStreams
            // grpc-swift's defaults (a 64 KiB window, 16 KiB frames) had a client wait for a
            // WINDOW_UPDATE every 64 KiB of a ~400 KiB export: 227–273k spans/s against 433–548k
            // with these (Benchmarks/README.md, "OTLP/gRPC").
            config.http2.targetWindowSize = configuration.targetWindowSize
            config.http2.maxFrameSize = configuration.maxFrameSize
            config.connection.maxIdleTime = configuration.idleConnectionTimeout
            config.channelDebuggingCallbacks.onAcceptTCPConnection = { [self] channel in
                let count = openConnections.add(1, ordering: .relaxed).newValue
                channel.closeFuture.whenComplete { [self] _ in _ = openConnections.subtract(1, ordering: .relaxed) }
                if count > limit {
                    receiverMetrics.connectionsRefused.increment()
                    channel.close(promise: nil)
                }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        GRPCStreamGuard(endpoint: endpoint, metrics: metrics, knownPaths: paths,
                                        exportPath: OTLPTraceService.exportPath),
                        position: .first)
                }
            }
        }
    }
}
