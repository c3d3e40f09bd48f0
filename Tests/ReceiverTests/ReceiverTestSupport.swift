import Logging
import Metrics
import OTLPWire
import Receiver
import Synchronization

/// Records what reaches the pipeline and answers as told.
final class RecordingIngest: SpanIngest {
    private let state = Mutex<(batches: [DecodedBatch], decision: IngestDecision)>(([], .accepted))

    init(decision: IngestDecision = .accepted) {
        state.withLock { $0.decision = decision }
    }

    func ingest(_ batch: DecodedBatch) async -> IngestDecision {
        state.withLock { state in
            state.batches.append(batch)
            return state.decision
        }
    }

    var batches: [DecodedBatch] { state.withLock { $0.batches } }
    var spanCount: Int { batches.reduce(0) { $0 + $1.spans.count } }
}

/// Answers `/healthz` only.
struct HealthRoutes: HTTPRouteHandler {
    func handle(_ request: HTTPRequestSummary) async -> HTTPResponseValue? {
        request.path == "/healthz" ? .text(200, "ok\n") : nil
    }
}

func makeEndpoint(ingest: RecordingIngest, maxBodySize: Int = 64 * 1024 * 1024,
                  metrics: any MetricsFactory = NOOPMetricsHandler.instance) -> OTLPExportEndpoint {
    OTLPExportEndpoint(maxBodySize: maxBodySize, ingest: ingest,
                       metrics: ReceiverMetrics(factory: metrics),
                       logger: Logger(label: "test"))
}

let protobufHeaders: [(name: String, value: String)] = [("Content-Type", "application/x-protobuf")]
let jsonHeaders: [(name: String, value: String)] = [("Content-Type", "application/json")]
