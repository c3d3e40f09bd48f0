import NIOCore
import NIOHTTP2
import NIOPosix

/// A plaintext HTTP/2 client connection (prior knowledge, as gRPC's `http://` is), ready for streams.
package enum HTTP2ClientConnection {
    /// Connects, and returns once the server's first SETTINGS frame has arrived, as gRPC clients do.
    ///
    /// The HTTP/2 handlers go in from the bootstrap's initializer, before the connection is active:
    /// added to a connection already active, the preface was seen to stay unsent now and then (the
    /// server never answered that connection).
    ///
    /// - Parameter targetWindowSize: the client's own receive window (connection and streams).
    package static func open(
        host: String, port: Int, group: any EventLoopGroup, targetWindowSize: Int = 65535
    ) async throws -> (channel: any Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
        let (channel, multiplexer, settled) = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    var connection = NIOHTTP2Handler.ConnectionConfiguration()
                    connection.targetWindowSize = targetWindowSize
                    let multiplexer = try sync.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: connection, streamConfiguration: .init()
                    ) { $0.eventLoop.makeSucceededVoidFuture() }
                    let settled = channel.eventLoop.makePromise(of: Void.self)
                    try sync.addHandler(ServerSettingsWaiter(settled: settled))
                    return (channel, multiplexer, settled.futureResult)
                }
            }
        do {
            try await settled.get()
        } catch {
            try? await channel.close()
            throw error
        }
        return (channel, multiplexer)
    }
}

/// Behind a client's HTTP/2 handler: succeeds `settled` at the server's first SETTINGS frame (fails
/// it if the connection closes first).
final class ServerSettingsWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame

    private let settled: EventLoopPromise<Void>
    private var done = false

    init(settled: EventLoopPromise<Void>) { self.settled = settled }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !done, case .settings(.settings) = unwrapInboundIn(data).payload {
            done = true
            settled.succeed()
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            settled.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }
}
