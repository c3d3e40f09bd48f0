import Logging
import Metrics
import OTLPWire
import Receiver
import StitchTestSupport

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
