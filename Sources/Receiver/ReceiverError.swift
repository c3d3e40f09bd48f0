/// Why the receiver refused a request. A struct over a private code so that new cases can be added
/// without breaking users; mapped to an HTTP status and a gRPC status code in exactly one place.
package struct ReceiverError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Code: Sendable, Equatable, CaseIterable {
        case notFound
        case methodNotAllowed
        case unsupportedMediaType
        case unsupportedEncoding
        case bodyTooLarge
        case malformedBody
        case badHeader
        case throttled
        case unavailable
    }

    let code: Code
    /// What was wrong and what to do, for the developer reading the response.
    package let message: String
    /// Seconds for `Retry-After` on 429/503.
    package let retryAfterSeconds: Int?

    init(_ code: Code, _ message: String, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    package static func notFound(_ path: String) -> ReceiverError {
        ReceiverError(.notFound, "no route for \(path); OTLP traces go to POST /v1/traces (or POST /)")
    }
    package static func methodNotAllowed(_ method: String, path: String, allowed: String) -> ReceiverError {
        ReceiverError(.methodNotAllowed, "\(method) is not allowed on \(path); use \(allowed)")
    }
    package static func unsupportedMediaType(_ contentType: String?) -> ReceiverError {
        ReceiverError(.unsupportedMediaType,
                      "unsupported Content-Type '\(contentType ?? "")'; send application/x-protobuf or application/json")
    }
    /// A gRPC call whose Content-Type is not `application/grpc` (answered HTTP 415, as gRPC says).
    package static func unsupportedGRPCContentType(_ contentType: String) -> ReceiverError {
        ReceiverError(.unsupportedMediaType, "unsupported content-type '\(contentType)' for a gRPC call; send application/grpc")
    }
    package static func unsupportedEncoding(_ encoding: String) -> ReceiverError {
        ReceiverError(.unsupportedEncoding,
                      "unsupported Content-Encoding '\(encoding)'; accepted: gzip, deflate, identity")
    }
    package static func bodyTooLarge(limit: Int, decompressed: Bool) -> ReceiverError {
        let which = decompressed ? "decompressed body" : "body"
        return ReceiverError(.bodyTooLarge, "\(which) exceeds the limit of \(limit) bytes; split the batch (max_body_size)")
    }
    package static func malformedBody(_ detail: String) -> ReceiverError {
        ReceiverError(.malformedBody, "cannot decode ExportTraceServiceRequest: \(detail)")
    }
    package static func badHeader(_ detail: String) -> ReceiverError {
        ReceiverError(.badHeader, detail)
    }
    /// Too many requests from clients right now (429); retry after the given delay.
    package static func throttled(_ detail: String, retryAfterSeconds: Int) -> ReceiverError {
        ReceiverError(.throttled, detail, retryAfterSeconds: retryAfterSeconds)
    }
    /// The pipeline cannot take data now (503); retry after the given delay.
    package static func unavailable(_ detail: String, retryAfterSeconds: Int) -> ReceiverError {
        ReceiverError(.unavailable, detail, retryAfterSeconds: retryAfterSeconds)
    }

    /// OTLP/HTTP spec, "Failures": 400 for bad data (never retried), 429/503 to throttle (retried).
    package var httpStatus: Int {
        switch code {
        case .notFound: 404
        case .methodNotAllowed: 405
        case .unsupportedMediaType, .unsupportedEncoding: 415
        case .bodyTooLarge: 413
        case .malformedBody, .badHeader: 400
        case .throttled: 429
        case .unavailable: 503
        }
    }

    /// The `google.rpc.Status.code` carried in the error body (gRPC canonical codes).
    package var rpcCode: Int32 {
        switch code {
        case .notFound: 5  // NOT_FOUND
        case .methodNotAllowed, .unsupportedMediaType, .unsupportedEncoding: 12  // UNIMPLEMENTED
        case .bodyTooLarge, .throttled: 8  // RESOURCE_EXHAUSTED
        case .malformedBody, .badHeader: 3  // INVALID_ARGUMENT
        case .unavailable: 14  // UNAVAILABLE
        }
    }

    /// The metric label for this refusal.
    package var reasonLabel: String { code.label }
}

extension ReceiverError.Code {
    var label: String {
        switch self {
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        case .unsupportedMediaType: "unsupported_media_type"
        case .unsupportedEncoding: "unsupported_encoding"
        case .bodyTooLarge: "body_too_large"
        case .malformedBody: "malformed"
        case .badHeader: "bad_header"
        case .throttled: "throttled"
        case .unavailable: "unavailable"
        }
    }
}

extension ReceiverError {
    package var description: String { "\(httpStatus): \(message)" }
}

/// A receiver could not listen at start-up (Stitch exits with status 2, naming the address).
package struct ListenerStartupError: Error, Sendable, CustomStringConvertible {
    /// `OTLP/HTTP` or `OTLP/gRPC`.
    package var listener: String
    package var address: String
    package var reason: String

    package init(listener: String, address: String, reason: String) {
        self.listener = listener
        self.address = address
        self.reason = reason
    }

    package var description: String { "the \(listener) receiver cannot listen on \(address): \(reason)" }
}
