import AsyncHTTPClient
import Foundation
import Logging
import NIOHTTP1
import TraceEdge

/// Forwards finished traces to an OTLP/HTTP endpoint (Jaeger, another collector) as protobuf.
///
/// Each trace's spans are sent under their original resource and scope, by copying the bytes
/// they were received in (no decode and re-encode). Several traces share one request up to
/// `maxRequestBytes` after compression; larger batches become several requests (see
/// `RequestPlanner`). Answers map to outcomes per the OTLP spec ("OTLP/HTTP Response",
/// "Retryable Response Codes"): 2xx delivered (a `partial_success` is reported, never retried);
/// 429, 502, 503, 504, connection failures and timeouts retryable, honouring `Retry-After`;
/// every other status permanent.
package final class OTLPHTTPExporter: TraceExporter {
    package let name: String
    package let configuration: OTLPHTTPExporterConfiguration
    private let http: HTTPDeliveryClient
    private let planner: RequestPlanner
    private let fixedHeaders: HTTPHeaders
    private let logger: Logger
    private let currentDate: @Sendable () -> Date

    /// - Parameters:
    ///   - currentDate: wall clock for `Retry-After` HTTP-dates (injected in tests).
    /// - Throws: `DestinationConfigurationError` listing every configuration problem.
    package init(
        name: String = "otlp", configuration: OTLPHTTPExporterConfiguration, logger: Logger,
        currentDate: @escaping @Sendable () -> Date = { Date() }
    ) throws(DestinationConfigurationError) {
        try DestinationConfigurationError.check(configuration.problems(), destination: name)
        self.name = name
        self.configuration = configuration
        self.logger = logger
        self.currentDate = currentDate
        planner = RequestPlanner(compression: configuration.compression, maxRequestBytes: configuration.maxRequestBytes)
        fixedHeaders = HTTPDeliveryValidation.requestHeaders(
            configured: configuration.headers, contentType: "application/x-protobuf", compression: configuration.compression)
        http = HTTPDeliveryClient(timeout: configuration.timeout)
    }

    /// About one request's worth of spans per batch.
    package var batchLimits: DeliveryBatchLimits {
        DeliveryBatchLimits(maxTraces: DeliveryBatchLimits.standard.maxTraces, maxBytes: configuration.maxRequestBytes)
    }

    /// Sends `traces` in as few requests as the size limit allows (see `RequestPlanner.deliver`).
    package func deliver(_ traces: [FinishedTrace]) async -> DeliveryOutcome {
        await planner.deliver(traces, destination: name, endpoint: configuration.resolvedEndpoint, logger: logger) { request in
            await send(request)
        }
    }

    private func send(_ request: PlannedRequest) async -> DeliveryOutcome {
        switch await http.send(method: .POST, url: configuration.resolvedEndpoint, headers: fixedHeaders, body: request.body) {
        case .success(let answer):
            return Self.outcome(for: answer, now: currentDate())
        case .failure(let failure):
            return failure.outcome
        }
    }

    /// OTLP spec, "Retryable Response Codes": only these are transient.
    static let retryableStatuses: Set<Int> = [429, 502, 503, 504]

    /// The outcome an OTLP/HTTP answer stands for.
    static func outcome(for answer: HTTPAnswer, now: Date) -> DeliveryOutcome {
        if answer.isSuccess {
            return ProtobufResponses.successOutcome(answer.body)
        }
        if retryableStatuses.contains(answer.status) {
            return .retryable(reason: answer.summary, after: answer.retryAfter(now: now))
        }
        return .permanent(reason: "rejected by the OTLP endpoint (HTTP \(answer.status))", response: answer.summary)
    }

    package func shutdown() async {
        await http.shutdown()
    }
}
