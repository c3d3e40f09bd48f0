// CONTRACT STUBS — replaced by the real implementation (OTLPWire helper). Signatures are the contract.

/// A malformed body or value, with a message a developer can act on.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The spans of one request that the pipeline can use, plus the count of those it could not.
public struct DecodedBatch: Sendable {
    public var payload: RequestPayload
    public var spans: [SpanRecord]
    /// Spans rejected one by one (wrong id length, all-zero ids): reported as OTLP partial success.
    public var rejectedSpans: Int
    /// Names the first rejected span's problem, e.g. "span 3 of scope 0: trace_id must be 16 bytes, got 8".
    public var firstRejection: String?
    public init(payload: RequestPayload, spans: [SpanRecord], rejectedSpans: Int, firstRejection: String?) {
        self.payload = payload
        self.spans = spans
        self.rejectedSpans = rejectedSpans
        self.firstRejection = firstRejection
    }
}

public enum OTLPTraceDecoder {
    /// Decodes an `ExportTraceServiceRequest`. Throws only when the body is not a decodable message;
    /// individually bad spans are counted in `rejectedSpans`.
    public static func decode(_ bytes: [UInt8], experimentID: String?) throws(WireError) -> DecodedBatch {
        throw WireError("not implemented")
    }
}

extension SpanRecord {
    public func decodeDetail() throws(WireError) -> SpanDetail { throw WireError("not implemented") }
}

extension RequestPayload {
    public func resourceDetail(at index: Int) throws(WireError) -> ResourceDetail { throw WireError("not implemented") }
    public func scopeDetail(at index: Int) throws(WireError) -> ScopeDetail { throw WireError("not implemented") }
}

public enum OTLPTraceEncoder {
    /// An `ExportTraceServiceRequest` holding `spans`, grouped by their original resource and scope,
    /// by copying the received bytes (no re-encoding of spans).
    public static func encodeRequest(_ spans: [SpanRecord]) -> [UInt8] { [] }
}

public enum OTLPJSON {
    /// Converts an OTLP/JSON `ExportTraceServiceRequest` to its protobuf encoding (hex ids, base64 ids
    /// where the length says so, int64 as string or number, enums as integers, unknown fields ignored).
    public static func protobufFromJSON(_ json: [UInt8]) throws(WireError) -> [UInt8] { throw WireError("not implemented") }
}

public enum OTLPResponses {
    /// `ExportTraceServiceResponse`, with `partial_success` when `rejectedSpans > 0` or a message is given.
    public static func exportResponse(rejectedSpans: Int64, errorMessage: String?, json: Bool) -> [UInt8] { [] }
    /// `google.rpc.Status` with `code` (a gRPC code) and `message`.
    public static func status(code: Int32, message: String, json: Bool) -> [UInt8] { [] }
}
