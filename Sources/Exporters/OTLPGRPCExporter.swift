import GRPCBytes
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import TraceEdge

/// Forwards finished traces to an OTLP/gRPC endpoint (`TraceService/Export`, unary): the second
/// transport of the same delivery core as `OTLPHTTPExporter` (disk queue, sender, dead letters).
///
/// The messages are the `ExportTraceServiceRequest` bytes `RequestPlanner` writes (span bytes
/// copied as received), sent and answered as raw bytes: no swift-protobuf on this path. Outcomes
/// follow the OTLP spec ("OTLP/gRPC Response", "Failures"): `OK` is delivered (a
/// `partial_success` is reported, never retried); `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`,
/// `OUT_OF_RANGE`, `UNAVAILABLE` and `DATA_LOSS` are retryable, and `RESOURCE_EXHAUSTED` only when
/// the status carries `google.rpc.RetryInfo`; a `RetryInfo.retry_delay` is honoured as the wait;
/// every other code is permanent.
///
/// The client is created with the exporter (when the destination opens) and its connections run
/// in a task the exporter owns, until `shutdown()`: `TraceExporter` has no `run()`, and the
/// sender that calls `deliver` is stopped before `RunningDestination.close` shuts exporters down.
package final class OTLPGRPCExporter: TraceExporter {
    package let name: String
    package let configuration: OTLPGRPCExporterConfiguration
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let connections: Task<Void, Never>
    private let planner: RequestPlanner
    private let metadata: Metadata
    private let options: CallOptions
    private let logger: Logger

    /// `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
    package static let exportMethod = MethodDescriptor(
        fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService", method: "Export", type: .unary)

    /// The transport's reconnect back-off. Short, so that a server that comes back is reached on
    /// the sender's next retry rather than after gRPC's default of up to two minutes.
    static let reconnectBackoff = HTTP2ClientTransport.Config.Backoff(
        initial: .milliseconds(100), max: .seconds(2), multiplier: 1.6, jitter: 0.2)

    /// - Throws: `DestinationConfigurationError` listing every configuration problem.
    package init(name: String = "otlp", configuration: OTLPGRPCExporterConfiguration, logger: Logger) throws(DestinationConfigurationError) {
        try DestinationConfigurationError.check(configuration.problems(), destination: name)
        guard let target = configuration.target else {
            throw DestinationConfigurationError(destination: name, problems: ["endpoint: '\(configuration.endpoint)' is not http://host[:port]"])
        }
        self.name = name
        self.configuration = configuration
        self.logger = logger
        // gRPC compresses each message itself, so requests are planned by their size before
        // compression (what a gRPC server's receive limit counts).
        planner = RequestPlanner(compression: .none, maxRequestBytes: configuration.maxRequestBytes)
        var metadata = Metadata()
        for (key, value) in configuration.headers.sorted(by: { $0.key < $1.key }) {
            metadata.addString(value, forKey: key.lowercased())
        }
        self.metadata = metadata
        let gzip = configuration.compression == .gzip
        var options = CallOptions.defaults
        options.timeout = configuration.timeout
        // Fail fast while the server is unreachable: the sender's back-off decides when to try again.
        options.waitForReady = false
        options.compression = gzip ? .gzip : CompressionAlgorithm.none
        options.maxResponseMessageBytes = HTTPDeliveryClient.maxResponseBytes
        self.options = options
        let transport: HTTP2ClientTransport.Posix
        do {
            transport = try HTTP2ClientTransport.Posix(
                target: .dns(host: target.host, port: target.port),
                transportSecurity: .plaintext,
                config: .defaults { config in
                    config.compression = .init(algorithm: gzip ? .gzip : .none, enabledAlgorithms: .all)
                    config.backoff = Self.reconnectBackoff
                })
        } catch {
            throw DestinationConfigurationError(destination: name, problems: ["endpoint: \(error)"])
        }
        let client = GRPCClient(transport: transport)
        self.client = client
        connections = Task {
            do {
                try await client.runConnections()
            } catch let error as RuntimeError where error.code == .clientIsStopped {
                // shutdown() came before the connections started: nothing was running.
            } catch {
                logger.warning("gRPC client stopped", metadata: ["destination": "\(name)", "error": "\(error)"])
            }
        }
    }

    deinit {
        connections.cancel()
    }

    /// About one message's worth of spans per batch.
    package var batchLimits: DeliveryBatchLimits {
        DeliveryBatchLimits(maxTraces: DeliveryBatchLimits.standard.maxTraces, maxBytes: configuration.maxRequestBytes)
    }

    /// Sends `traces` in as few calls as the size limit allows (see `RequestPlanner.deliver`).
    package func deliver(_ traces: [FinishedTrace]) async -> DeliveryOutcome {
        await planner.deliver(traces, destination: name, endpoint: configuration.endpoint, logger: logger) { request in
            await export(request.body)
        }
    }

    /// One `Export` call.
    private func export(_ message: [UInt8]) async -> DeliveryOutcome {
        do {
            return try await client.unary(
                request: ClientRequest(message: message, metadata: metadata), descriptor: Self.exportMethod,
                serializer: RawBytesCoding(), deserializer: RawBytesCoding(), options: options
            ) { response in
                ProtobufResponses.successOutcome(try response.message)
            }
        } catch let error as RPCError {
            return Self.outcome(for: error)
        } catch {
            // The client itself refused (it is shutting down): try again later.
            return .retryable(reason: "gRPC client: \(error)", after: nil)
        }
    }

    /// OTLP spec, "OTLP/gRPC Response": the codes that are transient.
    static let retryableCodes: Set<RPCError.Code> = [.cancelled, .deadlineExceeded, .aborted, .outOfRange, .unavailable, .dataLoss]

    /// The outcome a failed call stands for; `RESOURCE_EXHAUSTED` is retryable only with a
    /// `RetryInfo` (the server says it may recover), whose delay is honoured for every code.
    static func outcome(for error: RPCError) -> DeliveryOutcome {
        let summary = summary(of: error)
        let retryDelay = error.metadata[binaryValues: "grpc-status-details-bin"].lazy
            .compactMap { ProtobufResponses.retryDelay(statusDetails: $0) }.first
        if retryableCodes.contains(error.code) || (error.code == .resourceExhausted && retryDelay != nil) {
            return .retryable(reason: summary, after: retryDelay)
        }
        return .permanent(reason: "rejected by the OTLP endpoint (gRPC \(codeName(error.code)))", response: summary)
    }

    /// The code's spec name and the server's message, at most 4 KiB.
    static func summary(of error: RPCError) -> String {
        var text = "gRPC \(codeName(error.code))"
        if !error.message.isEmpty { text += ": " + error.message }
        return HTTPAnswer.bounded(text, to: 4096)
    }

    /// The status code's name as the gRPC spec writes it (`UNAVAILABLE`).
    static func codeName(_ code: RPCError.Code) -> String {
        GRPCCodeName.of(code.rawValue) ?? "code \(code.rawValue)"
    }

    /// Stops taking calls, lets the one in flight finish (bounded by its deadline), and waits for
    /// the connections to close.
    package func shutdown() async {
        client.beginGracefulShutdown()
        await connections.value
    }
}
