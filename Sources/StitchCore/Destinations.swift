import Exporters
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import TraceAssembler
import TraceEdge
import SQLiteStore
import TraceModel

/// How much a destination can take now, as the receiver sees it.
enum DestinationPressure: Sendable, Equatable {
    /// It takes more.
    case accepting
    /// Its in-memory hand-off is at its bound, but drains: into the store, or into a disk queue with room.
    case behind
    /// Its disk queue is at its bound: the destination is down, or far behind.
    case full
    /// A store whose hand-off is at its bound while its database cannot be reached.
    case unreachable
}

/// A destination as the pipeline runs it: the in-memory hand-off from the assembler, and for
/// forwarding destinations the on-disk queue behind it.
struct RunningDestination: Sendable {
    let configuration: DestinationConfiguration
    /// Filled by the assembler's release callback (never blocks it); drained by a writer service.
    let handoff: HandoffQueue
    let persistent: PersistentQueue?
    /// The embedded store, for `store` destinations.
    let store: (any TraceStore)?
    /// The forwarding destination's client (OTLP/HTTP, OTLP/gRPC, MLflow or MLflow's database), for `otlp`, `mlflow` and `mlflow_database` destinations.
    let delivery: (any TraceExporter)?
    /// Where a forwarding destination keeps what it refused for good.
    let deadLetters: DeadLetterStore?
    /// Writer first, then (for forwarding destinations) the sender.
    let services: [any Service]

    /// Whether it can take more now (see `PipelineIngest` for the answers that follow); lock-free
    /// for the disk queue, whose flag its I/O thread publishes.
    var pressure: DestinationPressure {
        if persistent?.isFull == true { return .full }
        guard handoff.isFull else { return .accepting }
        return store?.isUnreachable == true ? .unreachable : .behind
    }

    /// What the hand-off still holds, for a shutdown that ran out of time (nil when empty).
    var pendingInMemory: String? {
        let (traces, bytes) = handoff.occupancy
        return traces == 0 ? nil : "\(traces) traces (\(bytes) bytes) not yet written"
    }

    /// What the disk queue still holds (it stays on disk and is sent after the next start).
    var pendingOnDisk: String? {
        guard let queued = persistent?.stats.queuedTraces, queued > 0 else { return nil }
        return "\(queued) traces on disk not yet delivered"
    }

    /// Closes what `make` opened: the store's connections, the disk queue and the dead letters (and
    /// their I/O threads), the HTTP or gRPC client.
    func close() async {
        if let store {
            do { try await store.close() } catch {
                Logger(label: "stitch").warning("store did not close cleanly", metadata: ["destination": "\(configuration.name)", "error": "\(error)"])
            }
        }
        // Each stops its I/O thread once the work already submitted to it is done.
        await persistent?.shutdown()
        await deadLetters?.shutdown()
        await delivery?.shutdown()
    }

    static func make(_ configuration: DestinationConfiguration, stitch: StitchConfiguration,
                     logger: Logger, metrics: any MetricsFactory) async throws -> RunningDestination {
        var logger = logger
        logger[metadataKey: "destination"] = "\(configuration.name)"
        let handoff = HandoffQueue(maxBytes: stitch.storeQueueMaxBytes)
        switch configuration.kind {
        case .store(let path):
            let store = try await StoreOpening.open(path, defaultExperimentID: stitch.defaultExperimentID,
                                                    logger: logger, metrics: metrics)
            let writer = SinkWriter(name: configuration.name, queue: handoff, sink: store, batchSize: stitch.storeBatchMaxTraces,
                                           concurrentWrites: 2, logger: logger, metrics: metrics)
            return RunningDestination(configuration: configuration, handoff: handoff, persistent: nil, store: store,
                                      delivery: nil, deadLetters: nil, services: [writer])
        case .otlp, .otlpGRPC, .mlflow, .mlflowDatabase:
            let (queue, deadLetters) = try openDisk(
                name: configuration.name, directory: URL(fileURLWithPath: stitch.queueDirectory).appendingPathComponent(configuration.name),
                maxBytes: configuration.queueMaxBytes, fsync: configuration.queueFsync, logger: logger, metrics: metrics)
            let destination: any TraceExporter
            switch configuration.kind {
            case .otlp(let settings):
                destination = try OTLPHTTPExporter(name: configuration.name, configuration: settings, logger: logger)
            case .otlpGRPC(let settings):
                destination = try OTLPGRPCExporter(name: configuration.name, configuration: settings, logger: logger)
            case .mlflow(let settings):
                destination = try MLflowExporter(name: configuration.name, configuration: settings, logger: logger, metrics: metrics)
            case .mlflowDatabase(let settings):
                do {
                    destination = try await MLflowDatabaseExporter(name: configuration.name, configuration: settings,
                                                                   deadLetters: deadLetters, logger: logger, metrics: metrics)
                } catch {
                    await queue.shutdown()
                    await deadLetters.shutdown()
                    throw error
                }
            case .store:
                preconditionFailure("handled above")
            }
            let writer = SinkWriter(name: configuration.name, queue: handoff, sink: PersistentQueueSink(queue: queue), batchSize: 512,
                                          logger: logger, metrics: metrics)
            let sender = QueueSender(destination: destination, queue: queue, deadLetters: deadLetters,
                                           configuration: QueueSenderConfiguration(retryPolicy: configuration.retry),
                                           logger: logger, metrics: metrics)
            return RunningDestination(configuration: configuration, handoff: handoff, persistent: queue, store: nil,
                                      delivery: destination, deadLetters: deadLetters, services: [writer, SenderService(sender: sender)])
        }
    }
}

/// A forwarding target's state on disk under `directory`: its queue in `queue/` and its dead
/// letters in `dead-letters/` (destinations, and each cluster member's link).
func openDisk(name: String, directory: URL, maxBytes: Int, fsync: FsyncPolicy = .batch,
              logger: Logger, metrics: any MetricsFactory) throws -> (PersistentQueue, DeadLetterStore) {
    let queue = try PersistentQueue(
        name: name,
        configuration: PersistentQueueConfiguration(directory: directory.appendingPathComponent("queue").path,
                                                    maxBytes: maxBytes, fsync: fsync),
        logger: logger, metrics: metrics)
    let deadLetters = try DeadLetterStore(
        destination: name, configuration: DeadLetterConfiguration(directory: directory.appendingPathComponent("dead-letters").path),
        logger: logger, metrics: metrics)
    return (queue, deadLetters)
}

/// Appends finished traces to a destination's on-disk queue (written and fsynced on the queue's own
/// I/O thread). Traces the full queue refuses are counted by the queue.
struct PersistentQueueSink: TraceSink {
    let queue: PersistentQueue

    func consume(_ traces: [FinishedTrace]) async throws {
        try await queue.append(traces)
    }
}

/// Delivers from the on-disk queue until graceful shutdown; what is not yet delivered stays on disk
/// and is sent after the next start. (The queue and the client are closed by the application.)
struct SenderService: Service {
    let sender: QueueSender<ContinuousClock>

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await sender.run()
        }
    }
}
