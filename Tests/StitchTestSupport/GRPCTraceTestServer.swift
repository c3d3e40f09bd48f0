import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// A real grpc-swift server on 127.0.0.1 implementing OTLP's `TraceService/Export` with answers a
/// test scripts: it records every call's metadata and message bytes (decompressed by the
/// transport; gzip and deflate are accepted), so exporter tests see the real wire.
///
/// Messages go through the serializer pair the caller passes (the exporters' raw-bytes one), so
/// the server reads exactly the bytes a client sent.
package final class GRPCTraceTestServer: Sendable {
    package enum Answer: Sendable {
        /// `OK` with these `ExportTraceServiceResponse` bytes (empty: full success).
        case ok([UInt8])
        /// The call fails with this status (its metadata goes out as trailers).
        case error(RPCError)
        /// No answer for `seconds` (the client's deadline has to end the call), then `OK`.
        case hang(seconds: Int)
    }

    /// One call as received.
    package struct Call: Sendable {
        package var metadata: Metadata
        package var message: [UInt8]

        /// The first string value of metadata `key` (lowercase).
        package func value(_ key: String) -> String? {
            metadata[stringValues: key].first { _ in true }
        }
    }

    /// The calls, shared with the handler.
    private final class CallLog: Sendable {
        let calls = Mutex<[Call]>([])
    }

    private let answers: [Answer]
    private let recorded = CallLog()
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let serving = Mutex<Task<Void, Never>?>(nil)

    /// Answers in order; the last answer repeats. `port` 0 binds an ephemeral port.
    package init(
        port: Int = 0, answers: [Answer] = [.ok([])],
        serializer: some MessageSerializer<[UInt8]>, deserializer: some MessageDeserializer<[UInt8]>
    ) {
        precondition(!answers.isEmpty)
        self.answers = answers
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext,
            config: .defaults { $0.compression.enabledAlgorithms = .all })
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        let recorded = self.recorded
        router.registerHandler(
            forMethod: MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export", type: .unary),
            deserializer: deserializer, serializer: serializer
        ) { request, _ in
            let single = try await ServerRequest(stream: request)
            let index = recorded.calls.withLock { calls in
                calls.append(Call(metadata: single.metadata, message: single.message))
                return calls.count - 1
            }
            switch answers[min(index, answers.count - 1)] {
            case .ok(let response):
                return StreamingServerResponse(single: ServerResponse(message: response))
            case .error(let error):
                return StreamingServerResponse(single: ServerResponse(error: error))
            case .hang(let seconds):
                try? await Task.sleep(for: .seconds(seconds))
                return StreamingServerResponse(single: ServerResponse(message: []))
            }
        }
        server = GRPCServer(transport: transport, router: router)
    }

    /// Every call so far, in arrival order.
    package var calls: [Call] { recorded.calls.withLock { $0 } }

    /// Starts serving and returns the bound port.
    package func start() async throws -> Int {
        let server = self.server
        serving.withLock { task in
            task = Task { try? await server.serve() }
        }
        let address = try await server.transport.listeningAddress
        guard let port = address.ipv4?.port else { throw RPCError(code: .internalError, message: "no IPv4 address: \(address)") }
        return port
    }

    /// Stops at once: calls in flight are cancelled, the port is released.
    package func shutdown() async {
        guard let task = serving.withLock({ $0 }) else { return }
        server.beginGracefulShutdown()
        task.cancel()
        await task.value
    }
}
