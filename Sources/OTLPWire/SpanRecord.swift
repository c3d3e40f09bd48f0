/// One decoded `ExportTraceServiceRequest` body, shared by every span record taken from it.
///
/// Spans are not copied out of the request: each `SpanRecord` keeps the byte range of its encoded
/// `Span` message inside `bytes`, so that forwarding copies bytes instead of re-encoding and the
/// store decodes the full span only when it writes it.
package final class RequestPayload: Sendable {
    /// The whole (decompressed) protobuf body. For OTLP/JSON requests, the protobuf encoding of it.
    package let bytes: [UInt8]
    /// Every `ResourceSpans.resource` of the request, in request order.
    package let resources: [ResourceEntry]
    /// Every `ScopeSpans` of the request, in request order; each names its resource.
    package let scopes: [ScopeEntry]
    /// From the `x-mlflow-experiment-id` header, if the client sent one.
    package let experimentID: String?

    package init(bytes: [UInt8], resources: [ResourceEntry], scopes: [ScopeEntry], experimentID: String?) {
        self.bytes = bytes
        self.resources = resources
        self.scopes = scopes
        self.experimentID = experimentID
    }
}

/// A `Resource` as it was received: its encoded bytes plus what the pipeline needs without decoding.
package struct ResourceEntry: Sendable, Equatable {
    /// Byte range of the encoded `opentelemetry.proto.resource.v1.Resource` inside the payload
    /// (empty when the `ResourceSpans` had no resource).
    package var resourceBytes: Range<Int>
    /// Byte range of `ResourceSpans.schema_url` (field 3) contents, empty if absent.
    package var schemaURL: Range<Int>
    /// The `service.name` attribute, if present and a string.
    package var serviceName: String?

    package init(resourceBytes: Range<Int>, schemaURL: Range<Int>, serviceName: String?) {
        self.resourceBytes = resourceBytes
        self.schemaURL = schemaURL
        self.serviceName = serviceName
    }
}

/// An `InstrumentationScope` as it was received.
package struct ScopeEntry: Sendable, Equatable {
    /// Index into `RequestPayload.resources`.
    package var resourceIndex: Int
    /// Byte range of the encoded `InstrumentationScope` (empty when absent).
    package var scopeBytes: Range<Int>
    /// Byte range of `ScopeSpans.schema_url` (field 3) contents, empty if absent.
    package var schemaURL: Range<Int>

    package init(resourceIndex: Int, scopeBytes: Range<Int>, schemaURL: Range<Int>) {
        self.resourceIndex = resourceIndex
        self.scopeBytes = scopeBytes
        self.schemaURL = schemaURL
    }
}

/// What the pipeline keeps per span: ids and times as integers, the rest as a byte range.
package struct SpanRecord: Sendable {
    package var traceID: TraceID
    package var spanID: SpanID
    /// `SpanID.none` for a root span.
    package var parentSpanID: SpanID
    package var startTimeUnixNano: UInt64
    package var endTimeUnixNano: UInt64
    /// `Span.flags` (0x100: has is_remote, 0x200: parent is remote).
    package var flags: UInt32
    /// `Span.kind` raw value (0 unspecified … 5 consumer).
    package var kind: Int32
    /// `Status.code` raw value (0 unset, 1 ok, 2 error).
    package var statusCode: Int32
    /// Index into `payload.scopes` (and through it, the resource).
    package var scopeIndex: Int
    /// Byte range of the encoded `Span` message inside `payload.bytes`.
    package var spanBytes: Range<Int>
    package var payload: RequestPayload

    package init(
        traceID: TraceID, spanID: SpanID, parentSpanID: SpanID,
        startTimeUnixNano: UInt64, endTimeUnixNano: UInt64,
        flags: UInt32, kind: Int32, statusCode: Int32,
        scopeIndex: Int, spanBytes: Range<Int>, payload: RequestPayload
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.startTimeUnixNano = startTimeUnixNano
        self.endTimeUnixNano = endTimeUnixNano
        self.flags = flags
        self.kind = kind
        self.statusCode = statusCode
        self.scopeIndex = scopeIndex
        self.spanBytes = spanBytes
        self.payload = payload
    }

    package var isRoot: Bool { parentSpanID.isZero }

    /// Index into `payload.resources`.
    package var resourceIndex: Int { payload.scopes[scopeIndex].resourceIndex }

    package var resource: ResourceEntry { payload.resources[resourceIndex] }

    package var serviceName: String? { resource.serviceName }

    /// Size of the encoded span message; what buffering is accounted in.
    package var encodedSize: Int { spanBytes.count }
}

extension SpanRecord {
    /// The span's `mlflow.experimentId` attribute when it names an MLflow experiment: digits,
    /// bare or as MLflow writes attribute values (JSON-encoded, `"1"` with the quotes). MLflow's
    /// AI Gateway puts it on the root of its own trace, the only place that trace's experiment
    /// travels (mlflow.md, "MLflow's AI Gateway and distributed tracing"). Any other value is
    /// ignored (nil). Reads the span's bytes; the assembler asks for roots only.
    package var experimentIDAttribute: String? {
        let value = payload.bytes.withUnsafeBufferPointer { buffer -> String? in
            // Always true for a decoded span; a hand-made record (tests) may point past its payload.
            guard spanBytes.upperBound <= buffer.count else { return nil }
            return WireReader(buffer, 0..<buffer.count)
                .lastStringAttribute(named: "mlflow.experimentId", field: Field.Span.attributes, in: spanBytes)
        }
        return value.flatMap(Self.experimentID(fromAttribute:))
    }

    /// `"12"` (JSON-quoted) or `12` → "12"; nil unless 1 to 19 ASCII digits remain (an id that fits
    /// MLflow's integer experiment ids).
    static func experimentID(fromAttribute value: String) -> String? {
        var utf8 = Substring(value).utf8[...]
        if utf8.count >= 2, utf8.first == UInt8(ascii: "\""), utf8.last == UInt8(ascii: "\"") {
            utf8 = utf8.dropFirst().dropLast()
        }
        guard (1...19).contains(utf8.count), utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            return nil
        }
        return String(Substring(utf8))
    }
}
