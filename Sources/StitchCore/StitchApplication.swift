import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import GRPCReceiver
import Receiver
import ServiceLifecycle
import Synchronization
import UnixSignals
import Exporters
import TraceAssembler
import TraceEdge
import SQLiteStore
import TraceModel

/// The whole pipeline wired from a configuration:
/// receiver → assembler → write queue → store, run as one `ServiceGroup` (with a service that hands
/// memory back when the pipeline is idle).
///
/// Services are ordered so that graceful shutdown (reverse order) stops the receiver first, then
/// the assembler flushes everything it holds, and the store writer drains last.
package struct StitchApplication: Sendable {
    package let configuration: StitchConfiguration
    package let registry: PrometheusCollectorRegistry
    let logger: Logger

    package init(configuration: StitchConfiguration, logger: Logger, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.configuration = configuration
        self.logger = logger
        self.registry = registry
    }

    /// Runs until one of `signals` (default SIGTERM, SIGINT), then shuts down gracefully.
    ///
    /// Every resource is opened here and closed before this returns, whatever happens: the
    /// destinations (store connections, disk queues, HTTP clients) are opened one after another
    /// before anything listens; when one cannot open, those opened before it are closed and
    /// `DestinationStartupError` names it. After the services stop, every destination is closed.
    ///
    /// - Parameters:
    ///   - onListening: called with the bound address once the receiver accepts connections.
    ///   - onGRPCListening: called with the bound port once the OTLP/gRPC receiver (when on) accepts connections.
    ///   - onGroup: called with the running service group (`triggerGracefulShutdown()` on it stops it
    ///     like SIGTERM).
    ///   - onShutdownTimeout: called when graceful shutdown outlives `shutdown_timeout`, before the
    ///     group is cancelled and `run` throws; `stitch serve` exits with status 3 there.
    package func run(
        signals: [UnixSignal] = [.sigterm, .sigint],
        onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in },
        onGRPCListening: @escaping @Sendable (_ port: Int) -> Void = { _ in },
        onGroup: @Sendable (ServiceGroup) -> Void = { _ in },
        onShutdownTimeout: @escaping @Sendable (any Error) -> Void = { _ in }
    ) async throws {
        let factory = PrometheusMetricsFactory(registry: registry)
        let destinations = try await Self.open(configuration.effectiveDestinations, stitch: configuration, logger: logger, metrics: factory)
        var cluster: ClusterPeers?
        do {
            cluster = try configuration.cluster.map { try openCluster($0, metrics: factory) }
            let progress = ShutdownDeadline.Progress()
            let group = makeServiceGroup(destinations: destinations, cluster: cluster, metrics: factory, progress: progress,
                                         signals: signals, onListening: onListening, onGRPCListening: onGRPCListening)
            onGroup(group)
            try await ShutdownDeadline(timeout: configuration.shutdownTimeout, progress: progress)
                .run(group, logger: logger, onTimeout: onShutdownTimeout)
        } catch {
            await cluster?.close()
            for destination in destinations.reversed() { await destination.close() }
            throw error
        }
        await cluster?.close()
        for destination in destinations.reversed() { await destination.close() }
    }

    /// The members as this instance sees them at start (DNS names resolved) and their queues.
    func openCluster(_ cluster: ClusterConfiguration, metrics: any MetricsFactory) throws -> ClusterPeers {
        let (names, failures) = PeerResolution.resolve(cluster.peers)
        for failure in failures { logger.warning("cluster peer does not resolve", metadata: ["reason": "\(failure)"]) }
        let membership = ClusterMembership(selfName: cluster.selfAddress, peers: names, failureTimeout: cluster.failureTimeout)
        logger.info("cluster", metadata: ["self": "\(cluster.selfAddress)", "peers": "\(membership.peerNames.joined(separator: ","))"])
        do {
            return try ClusterPeers(membership: membership, configuration: cluster, queueDirectory: configuration.queueDirectory,
                                    logger: logger, metrics: metrics)
        } catch {
            throw DestinationStartupError(destination: "cluster", target: "member queues in \(configuration.queueDirectory)/cluster",
                                          reason: "\(error)")
        }
    }

    /// Opens each destination in order; on the first failure closes what was opened and throws.
    static func open(_ configurations: [DestinationConfiguration], stitch: StitchConfiguration,
                     logger: Logger, metrics: any MetricsFactory) async throws -> [RunningDestination] {
        var opened: [RunningDestination] = []
        for configuration in configurations {
            do {
                opened.append(try await RunningDestination.make(configuration, stitch: stitch, logger: logger, metrics: metrics))
            } catch {
                for destination in opened.reversed() { await destination.close() }
                throw DestinationStartupError(destination: configuration.name, target: describe(configuration.kind), reason: "\(error)")
            }
        }
        return opened
    }

    /// The pipeline's services as a group over open destinations.
    func makeServiceGroup(destinations: [RunningDestination], cluster: ClusterPeers? = nil, metrics factory: PrometheusMetricsFactory,
                          progress: ShutdownDeadline.Progress, signals: [UnixSignal],
                          onListening: @escaping @Sendable (SocketAddress) -> Void,
                          onGRPCListening: @escaping @Sendable (_ port: Int) -> Void = { _ in }) -> ServiceGroup {
        let assembler = TraceAssembler(
            configuration: configuration.assembler, clock: ContinuousClock(),
            logger: logger, metrics: factory, release: { traces in Self.fanOut(traces, to: destinations) })
        let pipelineIngest = PipelineIngest(assembler: assembler, destinations: destinations, retryAfterSeconds: configuration.retryAfterSeconds)
        let ingest: any SpanIngest
        if let cluster {
            cluster.setLocal(pipelineIngest)
            ingest = ClusterIngest(local: pipelineIngest, peers: cluster, retryAfterSeconds: configuration.retryAfterSeconds)
        } else {
            ingest = pipelineIngest
        }
        let queryStore = destinations.lazy.compactMap(\.store).first
        let server = OTLPHTTPServer(
            configuration: ReceiverConfiguration(
                host: configuration.listen.host, port: configuration.listen.port,
                maxBodySize: configuration.maxBodySize, maxConnections: configuration.maxConnections),
            ingest: ingest,
            routes: QueryRoutes(store: queryStore, registry: registry, membership: cluster?.membership),
            logger: logger, metrics: ReceiverMetrics(factory: factory, protocol: "http"))
        let grpcServer = configuration.grpcListen.map { address in
            OTLPGRPCServer(
                configuration: GRPCReceiverConfiguration(
                    host: address.host, port: address.port,
                    maxBodySize: configuration.maxBodySize, maxConnections: configuration.maxConnections),
                ingest: ingest, logger: logger, metrics: ReceiverMetrics(factory: factory, protocol: "grpc"))
        }
        for destination in destinations {
            logger.info("destination", metadata: ["destination": "\(destination.configuration.name)",
                                                   "traces": "\(destination.configuration.traces.rawValue)",
                                                   "target": "\(Self.describe(destination.configuration.kind))"])
        }

        // Senders first, writers next, then the assembler, the receivers (HTTP, gRPC) last: graceful
        // shutdown runs in reverse, so the receivers stop first and the senders last.
        let senders = destinations.flatMap { destination in
            destination.services.dropFirst().map { (ShutdownDeadline.Entry(name: "sender '\(destination.configuration.name)'",
                                                                            pending: { destination.pendingOnDisk }), $0) }
        }
        let writers = destinations.compactMap { destination in
            destination.services.first.map { (ShutdownDeadline.Entry(name: "writer '\(destination.configuration.name)'",
                                                                      pending: { destination.pendingInMemory }), $0) }
        }
        var receivers: [(ShutdownDeadline.Entry, any Service)] = [
            (ShutdownDeadline.Entry(name: "receiver", pending: { nil }), ReceiverService(server: server, onStarted: onListening)),
        ]
        if let grpcServer {
            receivers.append((ShutdownDeadline.Entry(name: "gRPC receiver", pending: { nil }),
                              GRPCReceiverService(server: grpcServer, onStarted: onGRPCListening)))
        }
        let pipeline: [(ShutdownDeadline.Entry, any Service)] = [
            (ShutdownDeadline.Entry(name: "assembler", pending: { nil }),
             AssemblerService(assembler: assembler, queues: destinations.map(\.handoff))),
        ] + receivers + [
            (ShutdownDeadline.Entry(name: "idle memory", pending: { nil }),
             IdleMemoryService(assembler: assembler, queues: destinations.map(\.handoff),
                               stores: destinations.compactMap(\.store), clock: ContinuousClock(), logger: logger, metrics: factory)),
        ]
        // The cluster's senders stop last of all: what the receivers queued for other members is
        // on disk by then, and is sent after the next start if not before.
        var clusterServices: [(ShutdownDeadline.Entry, any Service)] = []
        if let cluster {
            let gauges = Mutex<[String: Metrics.Gauge]>([:])
            let memberUp: @Sendable (String, Bool) -> Void = { peer, up in
                gauges.withLock { gauges in
                    let gauge = gauges[peer] ?? Metrics.Gauge(label: "stitch_cluster_member_up", dimensions: [("peer", peer)], factory: factory)
                    gauges[peer] = gauge
                    gauge.record(up ? 1 : 0)
                }
            }
            // Peers start up (ClusterMembership); the health checks record every change.
            for peer in cluster.membership.peerNames { memberUp(peer, true) }
            let service = ClusterService(peers: cluster, probe: HealthProbe(timeout: cluster.configuration.healthInterval),
                                         logger: logger, memberUp: memberUp)
            clusterServices.append((ShutdownDeadline.Entry(name: "cluster", pending: {
                let queued = cluster.all.reduce(0) { $0 + $1.queue.stats.queuedTraces }
                return queued == 0 ? nil : "\(queued) traces on disk not yet passed to their cluster members"
            }), service))
        }
        let services = ShutdownDeadline.services(clusterServices + senders + writers + pipeline, progress: progress)
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
        case .store(let path): "store \(StoreOpening.describe(path))"
        case .otlp(let settings): settings.description
        case .otlpGRPC(let settings): settings.description
        case .mlflow(let settings): settings.description
        case .mlflowDatabase(let settings): settings.description
        }
    }
}

/// A receiver could not listen at start-up (Stitch exits with status 2, naming the address).
package typealias ListenerStartupError = Receiver.ListenerStartupError

/// A destination could not be opened at start-up (Stitch exits with status 2).
package struct DestinationStartupError: Error, Sendable, CustomStringConvertible {
    package var destination: String
    package var target: String
    package var reason: String
    package var description: String { "destination '\(destination)' (\(target)) cannot start: \(reason)" }
}
