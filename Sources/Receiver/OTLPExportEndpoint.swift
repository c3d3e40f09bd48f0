import Logging
import Metrics
import OTLPWire

/// The OTLP/HTTP trace endpoint, independent of the transport: takes a request head and its
/// (still compressed) body, answers per the OTLP/HTTP specification.
///
/// OTLP/HTTP spec (v1.11, "OTLP/HTTP Request", "OTLP/HTTP Response"): binary protobuf or JSON by
/// `Content-Type`, the response in the request's content type; 200 with partial success for spans
/// that cannot be used; 400 for undecodable data; 413 over the body limit; 429/503 + Retry-After
/// to throttle.
package struct OTLPExportEndpoint: Sendable {
    package enum MediaType: Sendable {
        case protobuf
        case json

        package var contentType: String {
            switch self {
            case .protobuf: "application/x-protobuf"
            case .json: "application/json"
            }
        }

        /// Parameters such as `; charset=utf-8` are ignored.
        package init?(contentType: String?) {
            guard let contentType else { return nil }
            let essence = contentType.split(separator: ";", maxSplits: 1).first.map { String($0).trimmingASCIIWhitespace().lowercased() } ?? ""
            switch essence {
            case "application/x-protobuf", "application/protobuf": self = .protobuf
            case "application/json": self = .json
            default: return nil
            }
        }
    }

    /// The paths that take `POST` of `ExportTraceServiceRequest`. `/` is accepted because SDKs use
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` verbatim (otlp.md, "the endpoint pitfall").
    package static let paths: Set<String> = ["/v1/traces", "/"]

    package let maxBodySize: Int
    let ingest: any SpanIngest
    let metrics: ReceiverMetrics
    let logger: Logger

    package init(maxBodySize: Int, ingest: any SpanIngest, metrics: ReceiverMetrics, logger: Logger) {
        self.maxBodySize = maxBodySize
        self.ingest = ingest
        self.metrics = metrics
        self.logger = logger
    }

    /// Checks that can be made before reading the body (so a large body need not be buffered).
    package func precheck(method: String, path: String, headers: [(name: String, value: String)], contentLength: Int?) -> ReceiverError? {
        guard method == "POST" else {
            return .methodNotAllowed(method, path: path, allowed: "POST")
        }
        let lookup = { (name: String) in HTTPRequestSummary.header(name, in: headers) }
        guard MediaType(contentType: lookup("content-type")) != nil else {
            return .unsupportedMediaType(lookup("content-type"))
        }
        if let encoding = lookup("content-encoding"), BodyDecompressor.Encoding(header: encoding) == nil {
            return .unsupportedEncoding(encoding)
        }
        if let contentLength, contentLength > maxBodySize {
            return .bodyTooLarge(limit: maxBodySize, decompressed: false)
        }
        return nil
    }

    /// Handles a complete request. `body` is what arrived on the wire (at most `maxBodySize` bytes).
    package func handle(headers: [(name: String, value: String)], body: [UInt8]) async -> HTTPResponseValue {
        let lookup = { (name: String) in HTTPRequestSummary.header(name, in: headers) }
        let media = MediaType(contentType: lookup("content-type")) ?? .protobuf
        switch await export(media: media, encoding: lookup("content-encoding"),
                            experimentHeader: lookup("x-mlflow-experiment-id"), body: body,
                            forwardedBy: lookup(Self.forwardedByHeader)) {
        case .accepted(let rejectedSpans, let message):
            metrics.count(status: 200)
            return HTTPResponseValue(
                status: 200, contentType: media.contentType,
                body: OTLPResponses.exportResponse(rejectedSpans: Int64(rejectedSpans), errorMessage: message,
                                                   json: media == .json))
        case .refused(let error):
            return httpAnswer(error, media: media)
        }
    }

    /// The export itself, the same for every transport (OTLP/HTTP here, OTLP/gRPC in GRPCReceiver):
    /// decompress within the limit, decode, count, hand to the pipeline. A refusal is counted here.
    ///
    /// - Parameters:
    ///   - encoding: `Content-Encoding` (HTTP) or `grpc-encoding` (gRPC); nil for none.
    ///   - body: the message as it arrived (still compressed).
    ///   - forwardedBy: `x-stitch-forwarded-by`, set by a cluster member passing spans on.
    package func export(media: MediaType, encoding: String?, experimentHeader: String?, body: [UInt8],
                        forwardedBy: String? = nil) async -> ExportOutcome {
        metrics.bytesReceived.increment(by: Int64(body.count))
        var batch: DecodedBatch
        do {
            batch = try decode(media: media, encoding: encoding, experimentHeader: experimentHeader, body: body)
        } catch {
            return refuse(error)
        }
        batch.forwardedBy = forwardedBy
        metrics.spansReceived.increment(by: Int64(batch.spans.count))
        if batch.rejectedSpans > 0 {
            metrics.spansRejected.increment(by: Int64(batch.rejectedSpans))
            logger.debug("rejected spans", metadata: [
                "spans.rejected": "\(batch.rejectedSpans)", "reason": "\(batch.firstRejection ?? "")",
            ])
        }
        if !batch.spans.isEmpty, case .refused(let error) = await ingest.ingest(batch) {
            metrics.spansRefused.increment(by: Int64(batch.spans.count))
            return refuse(error)
        }
        let message = batch.rejectedSpans > 0
            ? "\(batch.rejectedSpans) span(s) rejected; first: \(batch.firstRejection ?? "invalid span")"
            : nil
        return .accepted(rejectedSpans: batch.rejectedSpans, message: message)
    }

    /// Counts (by reason) and logs a refusal; every transport's refusals go through here.
    package func refuse(_ error: ReceiverError) -> ExportOutcome {
        metrics.refusal(error)
        if error.httpStatus >= 500 || error.httpStatus == 429 {
            logger.debug("refused request", metadata: [
                "protocol": "\(metrics.protocolName)", "http.status": "\(error.httpStatus)", "reason": "\(error.message)",
            ])
        }
        return .refused(error)
    }

    func decode(media: MediaType, encoding: String?, experimentHeader: String?, body: [UInt8]) throws(ReceiverError) -> DecodedBatch {
        guard let encoding = BodyDecompressor.Encoding(header: encoding) else {
            throw .unsupportedEncoding(encoding ?? "")
        }
        let experimentID = try Self.experimentID(from: experimentHeader)
        let raw: [UInt8]
        do {
            raw = try BodyDecompressor.decompress(body, encoding: encoding, limit: maxBodySize)
        } catch {
            switch error {
            case .tooLarge:
                throw .bodyTooLarge(limit: maxBodySize, decompressed: encoding != .identity)
            case .corrupt(let detail):
                throw .malformedBody("\(encoding) body does not inflate: \(detail)")
            }
        }
        do {
            let protobuf = media == .json ? try OTLPJSON.protobufFromJSON(raw) : raw
            return try OTLPTraceDecoder.decode(protobuf, experimentID: experimentID)
        } catch {
            throw .malformedBody(error.message)
        }
    }

    /// Names the cluster member that passed a request on (`ClusterIngest`).
    package static let forwardedByHeader = "x-stitch-forwarded-by"

    /// MLflow's rule: the experiment id header, when present, is a non-negative integer.
    static func experimentID(from header: String?) throws(ReceiverError) -> String? {
        guard let header else { return nil }
        let value = String(header.trimmingASCIIWhitespace())
        if value.isEmpty { return nil }
        guard value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw .badHeader("x-mlflow-experiment-id must be a non-negative integer, got '\(value.prefix(64))'")
        }
        return value
    }

    /// A refusal found by the HTTP transport (before the export): counted, then answered.
    package func errorResponse(_ error: ReceiverError, media: MediaType?) -> HTTPResponseValue {
        _ = refuse(error)
        return httpAnswer(error, media: media)
    }

    /// A `google.rpc.Status` body in the request's content type, with `Retry-After` when throttling.
    func httpAnswer(_ error: ReceiverError, media: MediaType?) -> HTTPResponseValue {
        metrics.count(status: error.httpStatus)
        let media = media ?? .json
        var extra: [(name: String, value: String)] = []
        if let retry = error.retryAfterSeconds { extra.append(("Retry-After", String(retry))) }
        if error.httpStatus == 405 { extra.append(("Allow", "POST")) }
        return HTTPResponseValue(
            status: error.httpStatus, contentType: media.contentType,
            body: OTLPResponses.status(code: error.rpcCode, message: error.message, json: media == .json),
            headers: extra)
    }
}

/// What an export came to, whatever the transport carried it.
package enum ExportOutcome: Sendable, Equatable {
    /// Taken: OTLP success, with `partial_success` when spans were rejected (`message` says why).
    case accepted(rejectedSpans: Int, message: String?)
    /// Not taken (bad data, over the limit, the pipeline full); already counted by reason.
    case refused(ReceiverError)
}

/// The receiver's counters; created from an injected `MetricsFactory`.
package struct ReceiverMetrics: Sendable {
    let spansReceived: Counter
    let spansRejected: Counter
    let spansRefused: Counter
    let bytesReceived: Counter
    package let factory: any MetricsFactory
    /// The `protocol` label of every counter here: `http` or `grpc`.
    package let protocolName: String

    /// Every counter carries `protocol` (`http` for OTLP/HTTP, `grpc` for OTLP/gRPC), so that the two
    /// receivers' figures add up under one name and can be told apart.
    package init(factory: any MetricsFactory, protocol protocolName: String = "http") {
        self.factory = factory
        self.protocolName = protocolName
        let label = [("protocol", protocolName)]
        spansReceived = Counter(label: "stitch_spans_received_total", dimensions: label, factory: factory)
        spansRejected = Counter(label: "stitch_spans_rejected_total", dimensions: label, factory: factory)
        spansRefused = Counter(label: "stitch_spans_refused_total", dimensions: label, factory: factory)
        bytesReceived = Counter(label: "stitch_request_bytes_total", dimensions: label, factory: factory)
        connectionsRefused = Counter(label: "stitch_connections_refused_total", dimensions: label, factory: factory)
        var byStatus: [Int: Counter] = [:]
        for status in [200, 400, 404, 405, 413, 415, 429, 500, 503] {
            byStatus[status] = Counter(label: "stitch_http_requests_total", dimensions: [("status", String(status))], factory: factory)
        }
        requestsByStatus = byStatus
        refusalsByReason = Dictionary(uniqueKeysWithValues: ReceiverError.Code.allCases.map { code in
            (code.label, Counter(label: "stitch_requests_refused_total",
                                 dimensions: [("protocol", protocolName), ("reason", code.label)], factory: factory))
        })
    }

    /// Connections closed at once because `max_connections` were open.
    package let connectionsRefused: Counter

    /// Pre-made for the statuses the receiver answers, so that counting a request does not look up
    /// the registry on the hot path.
    private let requestsByStatus: [Int: Counter]

    func count(status: Int) {
        if let counter = requestsByStatus[status] {
            counter.increment()
        } else {
            Counter(label: "stitch_http_requests_total", dimensions: [("status", String(status))], factory: factory).increment()
        }
    }

    /// One per refusal reason, made up front like `requestsByStatus`: under backpressure every
    /// request is refused, so counting one must not look up the registry either.
    private let refusalsByReason: [String: Counter]

    func refusal(_ error: ReceiverError) {
        refusalsByReason[error.reasonLabel]?.increment()
    }
}
