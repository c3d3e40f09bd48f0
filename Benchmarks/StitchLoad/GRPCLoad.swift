import Exporters
import GRPCBytes
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NIOPosix

/// Sends a queue of `ExportTraceServiceRequest` messages as OTLP/gRPC `TraceService/Export` calls:
/// one HTTP/2 connection (one grpc-swift client) per `connections`, one call in flight on each, as
/// the HTTP/1.1 sender keeps one request in flight per keep-alive connection, so the two protocols
/// are compared at the same concurrency.
///
/// Retryable codes (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`: what a receiver under pressure answers)
/// are sent again after the same back-off as the HTTP sender's (50 ms doubling, at most 2 s);
/// latency is recorded for the final answer, from when the call was due (rate mode) or started.
struct GRPCLoad: LoadSender {
    var host: String
    var port: Int
    var connections: Int
    var maxAttempts: Int
    /// gzip each message (`grpc-encoding: gzip`); the messages are queued uncompressed.
    var gzip: Bool
    var experimentID: String?
    var group: MultiThreadedEventLoopGroup

    static let retryableCodes: Set<RPCError.Code> = [.unavailable, .resourceExhausted]

    func runConnection(_ queue: RequestQueue<[UInt8]>) async -> LoadStats {
        var stats = LoadStats()
        let transport: HTTP2ClientTransport.Posix
        do {
            transport = try HTTP2ClientTransport.Posix(
                target: .dns(host: host, port: port), transportSecurity: .plaintext,
                config: .defaults { $0.compression = .init(algorithm: gzip ? .gzip : .none, enabledAlgorithms: .all) },
                eventLoopGroup: group)
        } catch {
            stats.connectionErrors += 1
            stats.firstError = "cannot create a gRPC transport to \(host):\(port): \(error)"
            return stats
        }
        let client = GRPCClient(transport: transport)
        var metadata = Metadata()
        if let experimentID { metadata.addString(experimentID, forKey: "x-mlflow-experiment-id") }
        var options = CallOptions.defaults
        options.timeout = .seconds(30)
        options.compression = gzip ? .gzip : CompressionAlgorithm.none
        let connection = Task { try? await client.runConnections() }
        while let claimed = queue.claim() {
            if queue.isRateLimited {
                let wait = (claimed.due - .now()).nanoseconds
                if wait > 0 { try? await Task.sleep(for: .nanoseconds(wait)) }
            }
            await send(claimed, queue: queue, client: client, metadata: metadata, options: options, stats: &stats)
        }
        client.beginGracefulShutdown()
        await connection.value
        return stats
    }

    private func send(
        _ claimed: (index: Int, due: NIODeadline), queue: RequestQueue<[UInt8]>, client: GRPCClient<HTTP2ClientTransport.Posix>,
        metadata: Metadata, options: CallOptions, stats: inout LoadStats
    ) async {
        let message = queue.requests[claimed.index]
        let spans = queue.spans[claimed.index]
        var attempt = 1
        while true {
            let startedAt = NIODeadline.now()
            stats.bytesSent += message.count
            do {
                _ = try await client.unary(
                    request: ClientRequest(message: message, metadata: metadata), descriptor: OTLPGRPCExporter.exportMethod,
                    serializer: RawBytesCoding(), deserializer: RawBytesCoding(), options: options
                ) { response in try response.message }
                let start = queue.isRateLimited ? claimed.due : startedAt
                _ = stats.latencyMicros.record(UInt64(max(1, (NIODeadline.now() - start).nanoseconds / 1000)))
                stats.requestsOK += 1
                stats.spansOK += spans
                if queue.duplicates[claimed.index] { stats.duplicateRequestsOK += 1 }
                return
            } catch {
                let code = (error as? RPCError)?.code ?? .unknown
                stats.statusCounts[code.rawValue, default: 0] += 1
                if Self.retryableCodes.contains(code), attempt < maxAttempts {
                    stats.retries += 1
                    let backoff = retryDelay(attempt: attempt, suggested: nil)
                    attempt += 1
                    try? await Task.sleep(for: .milliseconds(Int(backoff * 1000)))
                    continue
                }
                stats.requestsFailed += 1
                stats.spansFailed += spans
                if stats.firstError == nil { stats.firstError = "request \(claimed.index): \(error)" }
                return
            }
        }
    }
}
