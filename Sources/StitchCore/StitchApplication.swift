import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import Receiver
import ServiceLifecycle
import UnixSignals
import TraceAssembler
import TraceStore

/// The whole pipeline wired from a configuration:
/// receiver → assembler → write queue → store, run as one `ServiceGroup`.
///
/// Services are ordered so that graceful shutdown (reverse order) stops the receiver first, then
/// the assembler flushes everything it holds, and the store writer drains last.
public struct StitchApplication: Sendable {
    public let configuration: StitchConfiguration
    public let registry: PrometheusCollectorRegistry
    let logger: Logger

    public init(configuration: StitchConfiguration, logger: Logger, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
    }

    /// Runs until SIGTERM/SIGINT, then shuts down gracefully.
    /// `onListening` is called with the bound address once the receiver accepts connections.
    public func run(onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }) async throws {
        try await makeServiceGroup(signals: [.sigterm, .sigint], onListening: onListening).run()
    }

    /// The pipeline's services as a group; `triggerGracefulShutdown()` on it stops it like SIGTERM.
    public func makeServiceGroup(
        signals: [UnixSignal],
        onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) throws -> ServiceGroup {
        let factory = PrometheusMetricsFactory(registry: registry)
        let store = try SQLiteTraceStore(path: configuration.db, defaultExperimentID: configuration.defaultExperimentID,
                                         logger: logger, metrics: factory)
        let queue = WriteQueue(maxBytes: configuration.storeQueueMaxBytes)
        let assembler = TraceAssembler(
            configuration: configuration.assembler, clock: ContinuousClock(),
            logger: logger, metrics: factory, release: { traces in queue.enqueue(traces) })
        let ingest = PipelineIngest(assembler: assembler, queue: queue, retryAfterSeconds: configuration.retryAfterSeconds)
        let server = OTLPHTTPServer(
            configuration: ReceiverConfiguration(
                host: configuration.listen.host, port: configuration.listen.port,
                maxBodySize: configuration.maxBodySize, maxConnections: configuration.maxConnections),
            ingest: ingest,
            routes: QueryRoutes(store: store, registry: registry),
            logger: logger, metrics: ReceiverMetrics(factory: factory))

        return ServiceGroup(configuration: .init(
            services: [
                .init(service: SinkWriterService(queue: queue, sink: store, batchSize: configuration.storeBatchMaxTraces,
                                                 logger: logger, metrics: factory)),
                .init(service: AssemblerService(assembler: assembler, queue: queue)),
                .init(service: ReceiverService(server: server, onStarted: onListening)),
            ],
            gracefulShutdownSignals: signals,
            logger: logger))
    }
}
