/// The two small protobuf messages an OTLP server answers with, read without a generated model.
///
/// Field numbers: `ExportTraceServiceResponse.partial_success` = 1; `ExportTracePartialSuccess`
/// `rejected_spans` = 1 (int64), `error_message` = 2; `google.rpc.Status` `code` = 1, `message` = 2.
package enum ProtobufResponses {
    /// The `partial_success` of an `ExportTraceServiceResponse`; nil when the body has none or does
    /// not parse (an empty body is full success).
    static func partialSuccess(_ body: [UInt8]) -> (rejectedSpans: Int64, message: String)? {
        var found: ArraySlice<UInt8>?
        guard ProtobufScanner.fields(body[...], { field, value in
            if field == 1, case .bytes(let bytes) = value { found = bytes }
        }), let found else { return nil }
        var rejected: Int64 = 0
        var message = ""
        guard ProtobufScanner.fields(found, { field, value in
            switch (field, value) {
            case (1, .varint(let raw)): rejected = Int64(bitPattern: raw)
            case (2, .bytes(let bytes)): message = String(decoding: bytes, as: UTF8.self)
            default: break
            }
        }) else { return nil }
        return (rejected, message)
    }

    /// What a successful `ExportTraceServiceResponse` (HTTP 2xx body, gRPC OK message) stands for:
    /// OTLP spec, "Partial Success": a `partial_success` with rejected spans or a message is
    /// logged and counted, and MUST NOT be retried; anything else is full success.
    static func successOutcome(_ body: [UInt8]) -> DeliveryOutcome {
        if let partial = partialSuccess(body), partial.rejectedSpans != 0 || !partial.message.isEmpty {
            return .partiallyRejected(rejectedSpans: partial.rejectedSpans, message: partial.message)
        }
        return .delivered
    }

    /// `google.rpc.Status.message`, if the body is such a message with a non-empty one.
    static func statusMessage(_ body: [UInt8]) -> String? {
        var message: String?
        guard ProtobufScanner.fields(body[...], { field, value in
            if field == 2, case .bytes(let bytes) = value { message = String(decoding: bytes, as: UTF8.self) }
        }) else { return nil }
        return message.flatMap { $0.isEmpty ? nil : $0 }
    }
}

extension ProtobufResponses {
    /// The `type_url` of `google.rpc.RetryInfo` inside a `google.protobuf.Any`.
    static let retryInfoTypeURL = "type.googleapis.com/google.rpc.RetryInfo"

    /// `google.rpc.RetryInfo.retry_delay` from the `details` of a `google.rpc.Status` (the
    /// `grpc-status-details-bin` trailer); nil when there is none, or the bytes do not parse, or
    /// the delay is negative.
    ///
    /// Field numbers: `Status.details` = 3 (repeated `Any`); `Any` `type_url` = 1, `value` = 2;
    /// `RetryInfo.retry_delay` = 1; `Duration` `seconds` = 1 (int64), `nanos` = 2 (int32).
    package static func retryDelay(statusDetails status: [UInt8]) -> Duration? {
        var delay: Duration?
        guard ProtobufScanner.fields(status[...], { field, value in
            guard delay == nil, field == 3, case .bytes(let any) = value else { return }
            var typeURL: ArraySlice<UInt8> = []
            var payload: ArraySlice<UInt8> = []
            guard ProtobufScanner.fields(any, { field, value in
                switch (field, value) {
                case (1, .bytes(let bytes)): typeURL = bytes
                case (2, .bytes(let bytes)): payload = bytes
                default: break
                }
            }), typeURL.elementsEqual(retryInfoTypeURL.utf8) else { return }
            var duration: ArraySlice<UInt8>?
            guard ProtobufScanner.fields(payload, { field, value in
                if field == 1, case .bytes(let bytes) = value { duration = bytes }
            }) else { return }
            // A RetryInfo without retry_delay still says "retry"; its delay is zero.
            var seconds: Int64 = 0
            var nanos: Int64 = 0
            guard ProtobufScanner.fields(duration ?? [], { field, value in
                switch (field, value) {
                case (1, .varint(let raw)): seconds = Int64(bitPattern: raw)
                case (2, .varint(let raw)): nanos = Int64(Int32(truncatingIfNeeded: raw))
                default: break
                }
            }), seconds >= 0, (0..<1_000_000_000).contains(nanos) else { return }
            delay = .seconds(seconds) + .nanoseconds(nanos)
        }) else { return nil }
        return delay
    }
}

/// A bounds-checked walk over the top-level fields of one protobuf message.
enum ProtobufScanner {
    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed
    }

    /// Calls `visit` for each field; false when the bytes are not a well-formed message.
    static func fields(_ bytes: ArraySlice<UInt8>, _ visit: (UInt32, Value) -> Void) -> Bool {
        var position = bytes.startIndex
        func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while position < bytes.endIndex && shift < 64 {
                let byte = bytes[position]
                position += 1
                result |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return result }
                shift += 7
            }
            return nil
        }
        while position < bytes.endIndex {
            guard let key = varint(), key >> 3 > 0, key >> 3 <= UInt64(UInt32.max) else { return false }
            let field = UInt32(key >> 3)
            switch key & 7 {
            case 0:
                guard let value = varint() else { return false }
                visit(field, .varint(value))
            case 1, 5:
                let width = key & 7 == 1 ? 8 : 4
                guard bytes.endIndex - position >= width else { return false }
                position += width
                visit(field, .fixed)
            case 2:
                guard let length = varint(), length <= UInt64(bytes.endIndex - position) else { return false }
                let end = position + Int(length)
                visit(field, .bytes(bytes[position..<end]))
                position = end
            default:
                return false
            }
        }
        return true
    }
}
