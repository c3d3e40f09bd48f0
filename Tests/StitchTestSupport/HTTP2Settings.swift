import NIOCore
import NIOHTTP2

/// Behind a client's HTTP/2 handler: succeeds `settled` at the server's first SETTINGS frame (fails it
/// if the connection closes first), so that the first stream is opened once the connection is up, as
/// gRPC clients do.
package final class ServerSettingsWaiter: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTP2Frame

    private let settled: EventLoopPromise<Void>
    private var done = false

    package init(settled: EventLoopPromise<Void>) { self.settled = settled }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !done, case .settings(.settings) = unwrapInboundIn(data).payload {
            done = true
            settled.succeed()
        }
        context.fireChannelRead(data)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            settled.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }
}
