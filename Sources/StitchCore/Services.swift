import Logging
import Metrics
import NIOCore
import OTLPWire
import GRPCReceiver
import Receiver
import ServiceLifecycle
import TraceAssembler
import TraceEdge
import SQLiteStore
import TraceModel

/// Writes finished traces from the queue into a sink, many per call. Runs until the queue is finished
/// and drained, so that on shutdown everything released is written before the process exits.
package struct SinkWriter: Service {
    let queue: HandoffQueue
    let sink: any TraceSink
    let batchSize: Int
    let batchSpans: Int
    let concurrentWrites: Int
    let logger: Logger
    let writeErrors: Counter
    let dropped: Counter
    let queuedBytes: Gauge
    let queuedTraces: Gauge

    /// Spans per batch at most (unless one trace alone has more): with two batches in flight, one
    /// prepared while the other is written, a few large traces must still make several batches.
    package static let defaultBatchSpans = 10_000

    /// `name` labels the metrics (`destination`). `concurrentWrites` > 1 only for sinks whose result
    /// does not depend on the order of batches (the store merges by trace and span id).
    package init(name: String, queue: HandoffQueue, sink: any TraceSink, batchSize: Int,
                batchSpans: Int = SinkWriter.defaultBatchSpans, concurrentWrites: Int = 1,
                logger: Logger, metrics: any MetricsFactory) {
        self.batchSpans = max(1, batchSpans)
        self.concurrentWrites = max(1, concurrentWrites)
        self.queue = queue
        self.sink = sink
        self.batchSize = batchSize
        self.logger = logger
        let dimensions = [("destination", name)]
        writeErrors = Counter(label: "stitch_sink_write_errors_total", dimensions: dimensions, factory: metrics)
        dropped = Counter(label: "stitch_sink_traces_dropped_total", dimensions: dimensions, factory: metrics)
        queuedBytes = Gauge(label: "stitch_sink_queued_bytes", dimensions: dimensions, factory: metrics)
        queuedTraces = Gauge(label: "stitch_sink_queued_traces", dimensions: dimensions, factory: metrics)
    }

    package func run() async throws {
        // The queue is finished by the assembler service after its final flush; until then keep
        // writing, also during graceful shutdown (the writer is the last service to stop).
        // Up to `concurrentWrites` batches are in flight: the store prepares a batch (decoding, span
        // JSON) on the calling task and serializes the SQLite part itself, so a second batch is
        // prepared on the other core while the first one is written.
        await withTaskGroup(of: Void.self) { group in
            var inFlight = 0
            while let batch = await queue.next(maxTraces: batchSize, maxSpans: batchSpans) {
                if inFlight == concurrentWrites {
                    await group.next()
                    inFlight -= 1
                }
                group.addTask {
                    await write(batch)
                    queue.completed(batch)
                    let (traces, bytes) = queue.occupancy
                    queuedTraces.record(traces)
                    queuedBytes.record(bytes)
                }
                inFlight += 1
            }
            await group.waitForAll()
        }
        logger.debug("sink writer drained")
        // The assembler finishes every hand-off queue at once; a service group treats a service that
        // ends before its own turn in the (reverse-order) graceful shutdown as a failure, so wait for it.
        try? await gracefulShutdown()
    }

    /// Writes a batch; on failure retries each trace alone a few times so that one bad trace cannot
    /// hold back the others. A trace that still fails is logged and counted, never silently lost.
    private func write(_ batch: [FinishedTrace]) async {
        do {
            try await sink.consume(batch)
            return
        } catch {
            writeErrors.increment()
            logger.warning("store write failed; retrying traces one by one", metadata: ["error": "\(error)"])
        }
        for trace in batch {
            var attempt = 0
            while true {
                do {
                    try await sink.consume([trace])
                    break
                } catch {
                    writeErrors.increment()
                    attempt += 1
                    if attempt >= 3 {
                        dropped.increment()
                        logger.error("trace could not be written; dropped", metadata: [
                            "trace.id": "\(trace.traceID.hex)", "error": "\(error)",
                        ])
                        break
                    }
                    try? await Task.sleep(for: .milliseconds(100 * attempt))
                }
            }
        }
    }
}

/// Runs the assembler's timers; on graceful shutdown releases everything it holds (reason
/// `shutdown`) and then finishes the hand-off queues, so that their writers drain and stop.
package struct AssemblerService<C: Clock>: Service where C.Duration == Duration {
    let assembler: TraceAssembler<C>
    let queues: [HandoffQueue]

    package init(assembler: TraceAssembler<C>, queues: [HandoffQueue]) {
        self.assembler = assembler
        self.queues = queues
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            await assembler.run()
        }
        await assembler.flush()
        for queue in queues { queue.finish() }
    }
}

/// Serves OTLP/HTTP until graceful shutdown, then stops accepting and finishes in-flight requests.
package struct ReceiverService: Service {
    let server: OTLPHTTPServer
    let onStarted: @Sendable (SocketAddress) -> Void

    package init(server: OTLPHTTPServer, onStarted: @escaping @Sendable (SocketAddress) -> Void = { _ in }) {
        self.server = server
        self.onStarted = onStarted
    }

    package func run() async throws {
        let address: SocketAddress
        do {
            address = try await server.start()
        } catch {
            let configuration = server.configuration
            throw ListenerStartupError(listener: "OTLP/HTTP", address: "\(configuration.host):\(configuration.port)", reason: "\(error)")
        }
        onStarted(address)
        // Wait until shutdown is requested (or the task is cancelled).
        try? await gracefulShutdown()
        await server.shutdown()
    }
}

/// Serves OTLP/gRPC until graceful shutdown, then stops taking calls and answers those in flight.
package struct GRPCReceiverService: Service {
    let server: OTLPGRPCServer
    let onStarted: @Sendable (_ port: Int) -> Void

    package init(server: OTLPGRPCServer, onStarted: @escaping @Sendable (_ port: Int) -> Void = { _ in }) {
        self.server = server
        self.onStarted = onStarted
    }

    package func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve(onListening: onStarted)
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}

/// The receiver's edge into the pipeline: refuses under pressure, otherwise hands spans to the assembler.
///
/// The rule (OTLP/HTTP spec, "Failures": both answers carry `Retry-After` and are retried by clients):
/// - some destination can take more → accepted: one slow destination must not stop the others (its
///   own queue counts what it has to refuse);
/// - every destination is behind only in memory (its hand-off at `store_queue_max_bytes`, still
///   draining into the store or into a disk queue with room) → **429 Too Many Requests**: the client
///   sends faster than Stitch writes, while the destinations are healthy;
/// - every destination is behind and at least one disk queue is at its `max_bytes` (the destination
///   is down, or far behind), or a store's hand-off is full while its database is unreachable (its
///   writer is retrying) → **503 Service Unavailable**.
///
/// Each refusal is counted by the receiver in `stitch_requests_refused_total{reason="throttled"}` (429)
/// or `{reason="unavailable"}` (503). The check reads the destinations' state without waiting for a
/// disk: the disk queue's flag is an atomic its I/O thread keeps current.
struct PipelineIngest<C: Clock>: SpanIngest where C.Duration == Duration {
    let assembler: TraceAssembler<C>
    let destinations: [RunningDestination]
    let retryAfterSeconds: Int

    func ingest(_ batch: DecodedBatch) async -> IngestDecision {
        if let refusal = Self.refusal(destinations.map { ($0.configuration.name, $0.pressure) },
                                      retryAfterSeconds: retryAfterSeconds) {
            return .refused(refusal)
        }
        _ = await assembler.ingest(batch.spans)
        return .accepted
    }

    /// The answer for destinations in these states (by name); nil to accept.
    static func refusal(_ destinations: [(name: String, pressure: DestinationPressure)],
                        retryAfterSeconds: Int) -> ReceiverError? {
        guard !destinations.isEmpty, !destinations.contains(where: { $0.pressure == .accepting }) else { return nil }
        let full = destinations.filter { $0.pressure == .full }.map(\.name)
        let unreachable = destinations.filter { $0.pressure == .unreachable }.map(\.name)
        if !full.isEmpty || !unreachable.isEmpty {
            var reasons: [String] = []
            if !full.isEmpty { reasons.append("the disk queue of \(full.joined(separator: ", ")) is full") }
            if !unreachable.isEmpty { reasons.append("the database of \(unreachable.joined(separator: ", ")) is unreachable") }
            return .unavailable("every destination is behind, and \(reasons.joined(separator: " and ")); retry later",
                                retryAfterSeconds: retryAfterSeconds)
        }
        let names = destinations.map(\.name).joined(separator: ", ")
        return .throttled("sending faster than the destinations are written (\(names)); retry later",
                          retryAfterSeconds: retryAfterSeconds)
    }
}
