import Foundation
import Logging
import NIOHTTP1
import Synchronization
import TraceEdge

/// Passes spans to the cluster member that owns their traces, batched by the sender, to the
/// member's own receiver: OTLP/gRPC (one HTTP/2 connection kept open per member, calls
/// multiplexed on it) at `grpcAddress`, or OTLP/HTTP (kept-open HTTP/1.1 connections) at
/// `http://<peer>/v1/traces`. Each request carries `x-stitch-forwarded-by` (the receiving member
/// assembles the spans whatever its own view of the cluster) and the spans' `x-mlflow-experiment-id`.
///
/// When the member is down (it stopped answering its health checks), what is queued for it is
/// handed to `reroute`, which sends it to the trace's owner now (this instance's assembler or
/// another member's queue), and counts as delivered here.
package final class PeerExporter: TraceExporter {
    package let name: String
    package let peer: String
    private let selfName: String
    private let isAlive: @Sendable () -> Bool
    private let reroute: @Sendable ([FinishedTrace]) async -> Bool
    private let logger: Logger
    /// `host:port` of the member's OTLP/gRPC receiver; nil: OTLP/HTTP to `peer`.
    private let grpcAddress: String?
    /// One client per experiment header value (most clusters see a handful).
    private let exporters = Mutex<[String: any TraceExporter]>([:])

    /// - Parameters:
    ///   - peer: `host:port` of the member's OTLP/HTTP receiver (its name, and its health checks).
    ///   - grpcAddress: `host:port` of its OTLP/gRPC receiver; nil sends over OTLP/HTTP.
    ///   - isAlive: whether the member currently answers its health checks.
    ///   - reroute: sends traces to their owner now; false when it could not (retried later).
    package init(name: String, peer: String, grpcAddress: String?, selfName: String, isAlive: @escaping @Sendable () -> Bool,
                 reroute: @escaping @Sendable ([FinishedTrace]) async -> Bool, logger: Logger) {
        self.name = name
        self.peer = peer
        self.grpcAddress = grpcAddress
        self.selfName = selfName
        self.isAlive = isAlive
        self.reroute = reroute
        self.logger = logger
    }

    package var batchLimits: DeliveryBatchLimits { DeliveryBatchLimits(maxTraces: 2048, maxBytes: 4 << 20) }

    package func deliver(_ traces: [FinishedTrace]) async -> DeliveryOutcome {
        guard isAlive() else {
            return await reroute(traces)
                ? .delivered
                : .retryable(reason: "member \(peer) is down and its traces could not be passed to their new owners", after: nil)
        }
        var outcome = DeliveryOutcome.delivered
        for (experiment, group) in Dictionary(grouping: traces, by: { $0.experimentID ?? "" }).sorted(by: { $0.key < $1.key }) {
            let exporter: any TraceExporter
            do {
                exporter = try self.exporter(experiment: experiment)
            } catch {
                return .permanent(reason: "cannot reach member \(peer): \(error)", response: "")
            }
            let result = await exporter.deliver(group)
            switch result {
            case .delivered, .partiallyRejected:
                continue
            case .retryable, .permanent:
                // The groups already sent are sent again with the retry: the member keeps each span once.
                outcome = result
            }
            if case .retryable = outcome { break }
        }
        return outcome
    }

    private func exporter(experiment: String) throws -> any TraceExporter {
        try exporters.withLock { exporters in
            if let known = exporters[experiment] { return known }
            var headers = ["x-stitch-forwarded-by": selfName]
            if !experiment.isEmpty { headers["x-mlflow-experiment-id"] = experiment }
            let exporter: any TraceExporter
            if let grpcAddress {
                // Loopback and data-centre links: compressing costs more CPU than it saves.
                exporter = try OTLPGRPCExporter(
                    name: name, configuration: OTLPGRPCExporterConfiguration(endpoint: "http://\(grpcAddress)", headers: headers,
                                                                            compression: .none, timeout: .seconds(10)),
                    logger: logger)
            } else {
                exporter = try OTLPHTTPExporter(
                    name: name, configuration: OTLPHTTPExporterConfiguration(endpoint: "http://\(peer)/v1/traces", headers: headers,
                                                                            compression: .none, timeout: .seconds(10)),
                    logger: logger)
            }
            exporters[experiment] = exporter
            return exporter
        }
    }

    package func shutdown() async {
        for exporter in exporters.withLock({ Array($0.values) }) { await exporter.shutdown() }
    }
}

/// Asks a member's `/healthz` (a GET with a short timeout).
package final class HealthProbe: Sendable {
    private let client: HTTPDeliveryClient

    package init(timeout: Duration) {
        client = HTTPDeliveryClient(timeout: timeout)
    }

    /// True when `http://<address>/healthz` answers 2xx.
    package func answers(_ address: String) async -> Bool {
        switch await client.send(method: .GET, url: "http://\(address)/healthz", headers: [:], body: []) {
        case .success(let answer): return answer.isSuccess
        case .failure: return false
        }
    }

    package func shutdown() async {
        await client.shutdown()
    }
}
