import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOHTTP1
import OTLPWire
import TraceEdge

/// Sends finished traces to an MLflow tracking server's OTLP endpoint (`<tracking_uri>/v1/traces`).
///
/// Each trace goes as ONE request (mlflow.md, "The tracking server's OTLP endpoint"), with the
/// root span's `ResourceSpans` first, so that MLflow stores one finished trace whose tags come
/// from the root's service, never a half trace left `IN_PROGRESS`. A late fragment goes as its own
/// request to the same trace id; MLflow merges it (re-sending spans is an idempotent upsert).
/// After the spans, the trace gets, through MLflow's trace-tag endpoint, `stitch.services` when it
/// spans several services and then, last, `stitch.completeness` (the release reason: `closed`,
/// `timeout`, …), so that a trace whose root never came can be found by its tag, and a reader
/// that sees `stitch.completeness` knows the delivery (spans and every tag) is complete.
///
/// Answers: 2xx delivered; 404 (unknown experiment), 400 (bad request, e.g. the trace id already
/// belongs to another experiment), 401/403, 422 and other 4xx permanent, with a reason naming the
/// experiment; 408, 429, 5xx (but 501), connection failures and timeouts retryable.
package final class MLflowExporter: TraceExporter {
    package let name: String
    package let configuration: MLflowExporterConfiguration
    private let http: HTTPDeliveryClient
    private let planner: RequestPlanner
    private let spanHeaders: HTTPHeaders
    private let tagHeaders: HTTPHeaders
    private let logger: Logger
    private let tagFailures: Counter
    private let currentDate: @Sendable () -> Date

    package static let completenessTag = "stitch.completeness"
    package static let servicesTag = "stitch.services"

    /// - Parameters:
    ///   - metrics: counts `stitch_destination_tag_failures_total{destination}` (a tag MLflow refused).
    ///   - currentDate: wall clock for `Retry-After` HTTP-dates (injected in tests).
    /// - Throws: `DestinationConfigurationError` listing every configuration problem.
    package init(
        name: String = "mlflow", configuration: MLflowExporterConfiguration, logger: Logger,
        metrics: any MetricsFactory, currentDate: @escaping @Sendable () -> Date = { Date() }
    ) throws(DestinationConfigurationError) {
        try DestinationConfigurationError.check(configuration.problems(), destination: name)
        self.name = name
        self.configuration = configuration
        self.logger = logger
        self.currentDate = currentDate
        tagFailures = Counter(label: "stitch_destination_tag_failures_total", dimensions: [("destination", name)], factory: metrics)
        // One trace per request, whatever its size, up to the hard limit: a trace cut in two would
        // be stored IN_PROGRESS until its second half arrives.
        planner = RequestPlanner(compression: configuration.compression, maxRequestBytes: RequestPlanner.hardLimit)
        spanHeaders = HTTPDeliveryValidation.requestHeaders(
            configured: configuration.headers, contentType: "application/x-protobuf", compression: configuration.compression)
        tagHeaders = HTTPDeliveryValidation.requestHeaders(
            configured: configuration.headers, contentType: "application/json", compression: .none)
        http = HTTPDeliveryClient(timeout: configuration.timeout)
    }

    /// One trace per call, so that each trace's outcome (its experiment may not exist) is its own.
    package var batchLimits: DeliveryBatchLimits {
        DeliveryBatchLimits(maxTraces: 1, maxBytes: RequestPlanner.hardLimit)
    }

    /// Delivers the traces one after the other and stops at the first that is not delivered (with
    /// `batchLimits` there is one per call).
    package func deliver(_ traces: [FinishedTrace]) async -> DeliveryOutcome {
        for trace in traces {
            let outcome = await deliver(trace)
            if outcome != .delivered { return outcome }
        }
        return .delivered
    }

    private func deliver(_ trace: FinishedTrace) async -> DeliveryOutcome {
        guard !trace.spans.isEmpty else { return .delivered }
        let experiment = configuration.experiment(forTraceExperiment: trace.experimentID)
        let traceID = Self.mlflowTraceID(trace.traceID)
        let requests: [PlannedRequest]
        do {
            requests = try planner.plan([Self.rootFirst(trace.spans)])
        } catch {
            return .permanent(reason: "trace \(traceID) cannot be sent to MLflow experiment \(experiment): \(error)", response: "")
        }
        var headers = spanHeaders
        headers.replaceOrAdd(name: "x-mlflow-experiment-id", value: experiment)
        for request in requests {
            let outcome: DeliveryOutcome
            switch await http.send(method: .POST, url: configuration.tracesURL, headers: headers, body: request.body) {
            case .success(let answer):
                outcome = Self.outcome(forSpans: answer, experiment: experiment, traceID: traceID, now: currentDate())
            case .failure(let failure):
                outcome = failure.outcome
            }
            logger.debug("MLflow span request", metadata: [
                "destination": "\(name)", "trace.id": "\(traceID)", "experiment": "\(experiment)",
                "spans": "\(request.spanCount)", "bytes": "\(request.body.count)", "outcome": "\(outcome)",
            ])
            guard outcome == .delivered else { return outcome }
        }
        guard configuration.setTraceTags else { return .delivered }
        for (key, value) in Self.tags(for: trace) {
            if case .retryable(let reason, let after) = await setTag(key, value, traceID: traceID) {
                return .retryable(reason: "setting tag \(key) on \(traceID): \(reason)", after: after)
            }
        }
        return .delivered
    }

    /// Sets one trace tag; a refusal other than a transient one is logged and counted but does not
    /// fail the delivery (the spans are stored; re-sending them would not make the tag succeed).
    private func setTag(_ key: String, _ value: String, traceID: String) async -> DeliveryOutcome {
        let body = Self.tagBody(key: key, value: value)
        switch await http.send(method: .PATCH, url: configuration.traceTagURL(mlflowTraceID: traceID), headers: tagHeaders, body: body) {
        case .success(let answer) where answer.isSuccess:
            return .delivered
        case .success(let answer) where Self.isRetryable(status: answer.status):
            return .retryable(reason: answer.summary, after: answer.retryAfter(now: currentDate()))
        case .success(let answer):
            tagFailures.increment()
            logger.warning("MLflow refused a trace tag", metadata: [
                "destination": "\(name)", "trace.id": "\(traceID)", "tag": "\(key)", "response": "\(answer.summary)",
            ])
            return .delivered
        case .failure(let failure):
            return .retryable(reason: failure.reason, after: nil)
        }
    }

    /// MLflow's id of an OTLP trace: `tr-` + 32 lowercase hex digits.
    package static func mlflowTraceID(_ traceID: TraceID) -> String { "tr-" + traceID.hex }

    /// The spans with the (first) root moved to the front, the rest in arrival order:
    /// `encodeRequest` writes resources and scopes in first-appearance order, so the root's
    /// `ResourceSpans` comes first.
    static func rootFirst(_ spans: [SpanRecord]) -> [SpanRecord] {
        guard let rootIndex = spans.firstIndex(where: \.isRoot), rootIndex != spans.startIndex else { return spans }
        var ordered = spans
        let root = ordered.remove(at: rootIndex)
        ordered.insert(root, at: 0)
        return ordered
    }

    /// The tags Stitch sets on a trace in MLflow: none for a late fragment (the trace's own
    /// release already set them, and a fragment alone says nothing about the whole trace).
    static func tags(for trace: FinishedTrace) -> [(key: String, value: String)] {
        guard !trace.isLateFragment else { return [] }
        var tags: [(key: String, value: String)] = []
        let services = Set(trace.spans.compactMap(\.serviceName))
        if services.count > 1 {
            tags.append((servicesTag, services.sorted().joined(separator: ",")))
        }
        // Last: its presence tells readers that the delivery is complete.
        tags.append((completenessTag, trace.reason.rawValue))
        return tags
    }

    private struct TagBody: Encodable {
        var key: String
        var value: String
    }

    static func tagBody(key: String, value: String) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding two strings cannot fail.
        return Array((try? encoder.encode(TagBody(key: key, value: value))) ?? Data())
    }

    static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 429 || (500...599).contains(status) && status != 501
    }

    /// The outcome of MLflow's answer to a `/v1/traces` request (mlflow/server/otel_api.py).
    static func outcome(forSpans answer: HTTPAnswer, experiment: String, traceID: String, now: Date) -> DeliveryOutcome {
        if answer.isSuccess { return .delivered }
        if isRetryable(status: answer.status) {
            return .retryable(reason: answer.summary, after: answer.retryAfter(now: now))
        }
        let detail = HTTPAnswer.bounded(answer.summary, to: 300)
        let reason = switch answer.status {
        case 404: "MLflow experiment \(experiment) does not exist (\(detail))"
        case 401, 403: "MLflow refused access for experiment \(experiment) (\(detail)); check the credentials and the server's allowed hosts"
        case 501: "the MLflow tracking server's store cannot take OTLP traces (\(detail))"
        default: "MLflow refused trace \(traceID) for experiment \(experiment) (\(detail))"
        }
        return .permanent(reason: reason, response: answer.summary)
    }

    package func shutdown() async {
        await http.shutdown()
    }
}
