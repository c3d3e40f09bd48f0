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
/// receiver → assembler → write queue → store, run as one `ServiceGroup` (with a service that hands
/// memory back when the pipeline is idle).
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
        let destinations = try configuration.effectiveDestinations.map {
            try RunningDestination.make($0, stitch: configuration, logger: logger, metrics: factory)
        }
        let assembler = TraceAssembler(
            configuration: configuration.assembler, clock: ContinuousClock(),
            logger: logger, metrics: factory, release: { traces in Self.fanOut(traces, to: destinations) })
        let ingest = PipelineIngest(assembler: assembler, destinations: destinations, retryAfterSeconds: configuration.retryAfterSeconds)
        let queryStore = destinations.lazy.compactMap(\.store).first
        let server = OTLPHTTPServer(
            configuration: ReceiverConfiguration(
                host: configuration.listen.host, port: configuration.listen.port,
                maxBodySize: configuration.maxBodySize, maxConnections: configuration.maxConnections),
            ingest: ingest,
            routes: QueryRoutes(store: queryStore, registry: registry),
            logger: logger, metrics: ReceiverMetrics(factory: factory))
        for destination in destinations {
            logger.info("destination", metadata: ["destination": "\(destination.configuration.name)",
                                                   "traces": "\(destination.configuration.traces.rawValue)",
                                                   "target": "\(Self.describe(destination.configuration.kind))"])
        }

        // Senders first, writers next, then the assembler, the receiver last: graceful shutdown runs
        // in reverse, so the receiver stops first and the senders last.
        let senders = destinations.flatMap { $0.services.dropFirst() }
        let writers = destinations.compactMap(\.services.first)
        let services: [any Service] = senders + writers + [
            AssemblerService(assembler: assembler, queues: destinations.map(\.handoff)),
            ReceiverService(server: server, onStarted: onListening),
            IdleMemoryService(assembler: assembler, queues: destinations.map(\.handoff),
                              stores: destinations.compactMap(\.store), clock: ContinuousClock(), logger: logger, metrics: factory),
        ]
        return ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: signals,
            logger: logger))
    }

    /// Hands each released trace to every destination that wants it (never blocks).
    static func fanOut(_ traces: [FinishedTrace], to destinations: [RunningDestination]) {
        for destination in destinations {
            let selection = destination.configuration.traces
            if selection == .all {
                destination.handoff.enqueue(traces)
            } else {
                destination.handoff.enqueue(traces.filter { selection.wants($0.isComplete, isLate: $0.isLateFragment) })
            }
        }
    }

    static func describe(_ kind: DestinationConfiguration.Kind) -> String {
        switch kind {
        case .store(let path): "store \(path)"
        case .otlp(let settings): settings.description
        case .mlflow(let settings): settings.description
        }
    }
}
