import Exporters
import Foundation
import Logging
import Metrics
import OTLPWire
import Receiver
import ServiceLifecycle
import Synchronization
import TraceEdge

/// The receiver's edge in cluster mode: spans of traces this instance owns go to its own pipeline;
/// the others are passed to their owners through a disk queue per member, and the client is
/// answered once they are safely queued. Spans a member passed on (`forwardedBy`) are always
/// assembled here, so that members whose views differ for a moment do not pass spans back and forth.
struct ClusterIngest: SpanIngest {
    let local: any SpanIngest
    let peers: ClusterPeers
    let retryAfterSeconds: Int

    func ingest(_ batch: DecodedBatch) async -> IngestDecision {
        guard batch.forwardedBy == nil else { return await local.ingest(batch) }
        let me = peers.membership.selfName
        let owners = peers.membership.owners(of: batch.spans.lazy.map(\.traceID))
        if owners.values.allSatisfy({ $0 == me }) { return await local.ingest(batch) }
        var mine: [SpanRecord] = []
        var theirs: [String: [SpanRecord]] = [:]
        for span in batch.spans {
            let owner = owners[span.traceID] ?? me
            if owner == me { mine.append(span) } else { theirs[owner, default: []].append(span) }
        }
        // Nothing is taken when a member's queue is full: the client keeps the whole request.
        for name in theirs.keys.sorted() where peers.isFull(name) {
            return .refused(.unavailable("the disk queue for cluster member \(name) is full; retry later",
                                         retryAfterSeconds: retryAfterSeconds))
        }
        if !mine.isEmpty {
            var part = batch
            part.spans = mine
            if case .refused(let error) = await local.ingest(part) { return .refused(error) }
        }
        for (name, spans) in theirs.sorted(by: { $0.key < $1.key }) {
            do {
                try await peers.enqueue(spans, to: name, experimentID: batch.payload.experimentID)
            } catch {
                return .refused(.unavailable("cannot queue spans for cluster member \(name): \(error); retry later",
                                             retryAfterSeconds: retryAfterSeconds))
            }
        }
        return .accepted
    }
}

/// One member's disk queue, its sender and its client.
struct PeerLink: Sendable {
    let name: String
    let queue: PersistentQueue
    let deadLetters: DeadLetterStore
    let exporter: PeerExporter
    let sender: QueueSender<ContinuousClock>
    let forwardedSpans: Counter

    func close() async {
        await queue.shutdown()
        await deadLetters.shutdown()
        await exporter.shutdown()
    }
}

/// The members' queues, opened as members appear (and, at start, every queue a former run left),
/// with the routing of what a member that went down had queued.
final class ClusterPeers: Sendable {
    let membership: ClusterMembership
    let configuration: ClusterConfiguration
    private let directory: URL
    private let logger: Logger
    private let metrics: any MetricsFactory
    private let links = Mutex<[String: PeerLink]>([:])
    /// This instance's own pipeline, for traces rerouted to it; set before any traffic.
    private let local = Mutex<(any SpanIngest)?>(nil)
    private let opened: AsyncStream<PeerLink>.Continuation
    /// New links, for `ClusterService` to run their senders.
    let newLinks: AsyncStream<PeerLink>
    private let reroutedTraces: Counter

    init(membership: ClusterMembership, configuration: ClusterConfiguration, queueDirectory: String,
         logger: Logger, metrics: any MetricsFactory) throws {
        self.membership = membership
        self.configuration = configuration
        directory = URL(fileURLWithPath: queueDirectory).appendingPathComponent("cluster")
        self.logger = logger
        self.metrics = metrics
        (newLinks, opened) = AsyncStream.makeStream(of: PeerLink.self)
        reroutedTraces = Counter(label: "stitch_cluster_traces_rerouted_total", factory: metrics)
        // What a former run queued, for members that may be gone: delivered or rerouted.
        let earlier = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        let names = earlier.compactMap { try? String(contentsOf: $0.appendingPathComponent("peer.name"), encoding: .utf8) }
        for name in Set(names + membership.peerNames).sorted() { _ = try link(name) }
    }

    func setLocal(_ ingest: any SpanIngest) { local.withLock { $0 = ingest } }

    func isFull(_ name: String) -> Bool { links.withLock { $0[name]?.queue.isFull ?? false } }

    /// The member's link, opened on first use.
    func link(_ name: String) throws -> PeerLink {
        if let known = links.withLock({ $0[name] }) { return known }
        let folder = directory.appendingPathComponent(name.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" }
            .reduce(into: "") { $0.append($1) })
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(name.utf8).write(to: folder.appendingPathComponent("peer.name"))
        let destination = "peer \(name)"
        var logger = logger
        logger[metadataKey: "peer"] = "\(name)"
        let (queue, deadLetters) = try openDisk(name: destination, directory: folder, maxBytes: configuration.queueMaxBytes,
                                                logger: logger, metrics: metrics)
        let membership = membership
        let grpcAddress = configuration.peerProtocol == .grpc ? Self.grpcAddress(of: name, offset: configuration.grpcPortOffset) : nil
        let exporter = PeerExporter(
            name: destination, peer: name, grpcAddress: grpcAddress, selfName: membership.selfName, isAlive: { membership.isAlive(name) },
            reroute: { [weak self] traces in await self?.reroute(traces, from: name) ?? false }, logger: logger)
        // Retried quickly: a member that is down is noticed within `failure_timeout`, and its
        // queue then drains to the new owners.
        let retry = RetryPolicy(initialInterval: .milliseconds(100), maxInterval: configuration.failureTimeout / 2)
        let sender = QueueSender(destination: exporter, queue: queue, deadLetters: deadLetters,
                                 configuration: QueueSenderConfiguration(retryPolicy: retry), logger: logger, metrics: metrics)
        let link = PeerLink(name: name, queue: queue, deadLetters: deadLetters, exporter: exporter, sender: sender,
                            forwardedSpans: Counter(label: "stitch_cluster_spans_forwarded_total", dimensions: [("peer", name)], factory: metrics))
        let (stored, isNew) = links.withLock { links -> (PeerLink, Bool) in
            if let raced = links[name] { return (raced, false) }
            links[name] = link
            return (link, true)
        }
        if isNew { opened.yield(link) } else { Task { await link.close() } }
        return stored
    }

    /// A member's OTLP/gRPC address: its name's host, at its port plus the offset.
    static func grpcAddress(of name: String, offset: Int) -> String? {
        guard let address = ListenAddress(name) else { return nil }
        return ListenAddress(host: address.host, port: address.port + offset).description
    }

    /// Queues `spans` (one request's spans of traces `name` owns) for the member.
    func enqueue(_ spans: [SpanRecord], to name: String, experimentID: String?) async throws {
        let link = try link(name)
        let traces = Dictionary(grouping: spans, by: \.traceID).map { traceID, spans in
            FinishedTrace(traceID: traceID, spans: spans, reason: .late, isComplete: false, experimentID: experimentID)
        }
        let refused = try await link.queue.append(traces)
        guard refused == 0 else { throw StitchError("its disk queue is full") }
        link.forwardedSpans.increment(by: spans.count)
    }

    /// What was queued for a member that is down, sent to each trace's owner now. False when some
    /// of it could not be taken (the sender retries the batch).
    func reroute(_ traces: [FinishedTrace], from name: String) async -> Bool {
        let owners = membership.owners(of: traces.map(\.traceID))
        var mine: [SpanRecord] = []
        for trace in traces {
            let owner = owners[trace.traceID] ?? membership.selfName
            if owner == membership.selfName {
                mine += trace.spans
                continue
            }
            do {
                try await enqueue(trace.spans, to: owner, experimentID: trace.experimentID)
            } catch {
                logger.warning("cannot pass on the traces of a member that is down", metadata: [
                    "peer": "\(name)", "owner": "\(owner)", "error": "\(error)"])
                return false
            }
        }
        if !mine.isEmpty, let local = local.withLock({ $0 }), let payload = mine.first?.payload {
            if case .refused = await local.ingest(DecodedBatch(payload: payload, spans: mine, rejectedSpans: 0, firstRejection: nil)) {
                return false
            }
        }
        reroutedTraces.increment(by: traces.count)
        return true
    }

    var all: [PeerLink] { links.withLock { Array($0.values) } }

    func close() async {
        opened.finish()
        for link in all { await link.close() }
    }
}

/// Runs the members' senders, their health checks and, for DNS names among the peers, their
/// re-resolution, until graceful shutdown.
struct ClusterService: Service {
    let peers: ClusterPeers
    let probe: HealthProbe
    let logger: Logger
    let memberUp: @Sendable (String, Bool) -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await checkHealth() }
                if peers.configuration.peers.contains(where: { !PeerResolution.isAddressLiteral(ListenAddress($0)?.host ?? "") }) {
                    group.addTask { await resolvePeers() }
                }
                for await link in peers.newLinks {
                    group.addTask { await link.sender.run() }
                }
                group.cancelAll()
            }
        }
        await probe.shutdown()
    }

    private func checkHealth() async {
        let membership = peers.membership
        while !Task.isCancelled {
            await withTaskGroup(of: Void.self) { round in
                for name in membership.peerNames {
                    round.addTask {
                        let answered = await probe.answers(name)
                        if let change = membership.report(name, answered: answered) {
                            logger.notice(change == .up ? "cluster member is up" : "cluster member is down; its share goes to the others",
                                          metadata: ["peer": "\(name)"])
                            memberUp(name, change == .up)
                        }
                    }
                }
            }
            try? await Task.sleep(for: peers.configuration.healthInterval)
        }
    }

    private func resolvePeers() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: peers.configuration.resolveInterval)
            let (names, failures) = PeerResolution.resolve(peers.configuration.peers)
            for failure in failures { logger.warning("cluster peer does not resolve", metadata: ["reason": "\(failure)"]) }
            // A name that does not resolve for a moment keeps its members (their health decides).
            guard failures.isEmpty else { continue }
            for added in peers.membership.setPeers(names) {
                logger.notice("cluster member joined", metadata: ["peer": "\(added)"])
                _ = try? peers.link(added)
            }
        }
    }
}
