import Foundation

/// Where and how an `OTLPHTTPExporter` sends traces.
///
/// `description` never shows header values (they typically carry credentials).
package struct OTLPHTTPExporterConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// The OTLP/HTTP traces URL, e.g. `http://jaeger:4318/v1/traces`; `https://` uses TLS. A URL
    /// without a path gets `/v1/traces` (users give the collector's base address far more often
    /// than the root path).
    package var endpoint: String
    /// Extra request headers (e.g. `authorization`). Never logged.
    package var headers: [String: String]
    /// Default gzip.
    package var compression: HTTPCompression
    /// Per request, from connecting to the end of the answer. Default 10 s
    /// (`OTEL_EXPORTER_OTLP_TIMEOUT`'s default).
    package var timeout: Duration
    /// Largest request body after compression. Default 4 MiB; at most 64 MiB (`requestBytesLimit`).
    package var maxRequestBytes: Int

    /// OTLP spec: a client must not send requests over 64 MiB.
    package static let requestBytesLimit = RequestPlanner.hardLimit

    package init(
        endpoint: String, headers: [String: String] = [:], compression: HTTPCompression = .gzip,
        timeout: Duration = .seconds(10), maxRequestBytes: Int = 4 << 20
    ) {
        self.endpoint = endpoint
        self.headers = headers
        self.compression = compression
        self.timeout = timeout
        self.maxRequestBytes = maxRequestBytes
    }

    /// The URL requests go to.
    package var resolvedEndpoint: String {
        guard let url = URL(string: endpoint), url.path.isEmpty || url.path == "/" else { return endpoint }
        return (endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint) + "/v1/traces"
    }

    /// Every problem, as `field: what is wrong` (empty when valid).
    package func problems() -> [String] {
        var problems = HTTPDeliveryValidation.urlProblems(endpoint, field: "endpoint")
        problems += HTTPDeliveryValidation.headerProblems(headers, field: "headers")
        problems += HTTPDeliveryValidation.timeoutProblems(timeout, field: "timeout")
        problems += HTTPDeliveryValidation.requestBytesProblems(maxRequestBytes, field: "max_request_bytes")
        return problems
    }

    package var description: String {
        "OTLP/HTTP \(resolvedEndpoint) compression=\(compression.rawValue) timeout=\(timeout) "
            + "max_request_bytes=\(maxRequestBytes) headers=\(HTTPDeliveryValidation.redacted(headers))"
    }
}
