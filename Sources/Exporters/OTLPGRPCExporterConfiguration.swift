import Foundation

/// Where and how an `OTLPGRPCExporter` sends traces (`otlp: { protocol: grpc }`).
///
/// The same settings as `OTLPHTTPExporterConfiguration`, read the gRPC way: the endpoint has no
/// path (OTLP spec, "OTLP/gRPC": `http://host:4317`), headers go out as metadata with lowercase
/// keys, gzip compresses each message (`grpc-encoding: gzip`), and `maxRequestBytes` bounds the
/// message before compression (gRPC servers apply their receive limit, 4 MiB by default, to the
/// decompressed message). `description` never shows header values.
package struct OTLPGRPCExporterConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// `http://host[:port]` (port 4317 when omitted). `https://` (TLS) is not supported yet.
    package var endpoint: String
    /// Sent as request metadata on every call (e.g. `authorization`, `x-mlflow-experiment-id`).
    /// Never logged.
    package var headers: [String: String]
    /// Default gzip.
    package var compression: HTTPCompression
    /// The deadline of each call, connecting included. Default 10 s (`OTEL_EXPORTER_OTLP_TIMEOUT`'s default).
    package var timeout: Duration
    /// Largest `ExportTraceServiceRequest` message before compression. Default 4 MiB (the usual
    /// gRPC receive limit); at most 64 MiB.
    package var maxRequestBytes: Int

    /// The OTLP/gRPC default port.
    package static let defaultPort = 4317

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

    /// The host (IPv6 literals without brackets) and port calls go to; nil when the endpoint is not
    /// a usable `http://host[:port]`.
    package var target: (host: String, port: Int)? {
        guard let url = URL(string: endpoint), url.scheme?.lowercased() == "http",
              let host = url.host, !host.isEmpty else { return nil }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        return (bare, url.port ?? Self.defaultPort)
    }

    /// The metadata keys gRPC or the transport set themselves, or that need binary values.
    static func metadataProblems(_ headers: [String: String], field: String) -> [String] {
        var problems: [String] = []
        for name in headers.keys.sorted() {
            let key = name.lowercased()
            // gRPC over HTTP/2, "Requests": keys are 0-9 a-z _ - . (sent lowercase).
            if !key.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0) }) {
                problems.append("\(field): '\(name)' is not a valid gRPC metadata key (letters, digits, '_', '-', '.')")
            } else if key.hasPrefix("grpc-") || key == "te" || key == "user-agent" {
                problems.append("\(field): '\(name)' is set by gRPC itself")
            } else if key.hasSuffix("-bin") {
                problems.append("\(field): '\(name)': binary metadata (-bin) is not supported")
            }
        }
        return problems
    }

    /// Every problem, as `field: what is wrong` (empty when valid).
    package func problems() -> [String] {
        var problems: [String] = []
        let urlProblems = HTTPDeliveryValidation.urlProblems(endpoint, field: "endpoint")
        problems += urlProblems
        if urlProblems.isEmpty, let url = URL(string: endpoint) {
            if url.scheme?.lowercased() == "https" {
                problems.append("endpoint: TLS (https) is not supported for protocol grpc yet; use http://")
            }
            if !(url.path.isEmpty || url.path == "/") {
                problems.append("endpoint: a gRPC endpoint has no path (e.g. http://collector:4317), not '\(url.path)'")
            }
        }
        problems += HTTPDeliveryValidation.headerProblems(headers, field: "headers")
        problems += Self.metadataProblems(headers, field: "headers")
        problems += HTTPDeliveryValidation.timeoutProblems(timeout, field: "timeout")
        problems += HTTPDeliveryValidation.requestBytesProblems(maxRequestBytes, field: "max_request_bytes")
        return problems
    }

    package var description: String {
        "OTLP/gRPC \(endpoint) compression=\(compression.rawValue) timeout=\(timeout) "
            + "max_request_bytes=\(maxRequestBytes) headers=\(HTTPDeliveryValidation.redacted(headers))"
    }
}
