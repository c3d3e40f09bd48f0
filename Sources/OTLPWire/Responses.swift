/// The bodies Stitch answers OTLP/HTTP requests with (OTLP spec, "OTLP/HTTP Response"): protobuf for
/// protobuf requests, OTLP/JSON for JSON requests.
package enum OTLPResponses {
    /// `ExportTraceServiceResponse`, with `partial_success` when `rejectedSpans > 0` or a message is given.
    package static func exportResponse(rejectedSpans: Int64, errorMessage: String?, json: Bool) -> [UInt8] {
        let message = errorMessage ?? ""
        let partial = rejectedSpans != 0 || !message.isEmpty
        if json {
            guard partial else { return Array("{}".utf8) }
            var writer = JSONWriter()
            writer.beginObject()
            writer.key("partialSuccess")
            writer.beginObject()
            if rejectedSpans != 0 {
                writer.key("rejectedSpans")
                // proto3 JSON writes 64-bit integers as strings.
                writer.string(String(rejectedSpans))
            }
            if !message.isEmpty {
                writer.key("errorMessage")
                writer.string(message)
            }
            writer.endObject()
            writer.endObject()
            return writer.bytes
        }
        guard partial else { return [] }
        var writer = WireWriter()
        writer.message(Field.Response.partialSuccess) { writer in
            writer.int64Field(Field.Response.rejectedSpans, rejectedSpans)
            writer.stringField(Field.Response.errorMessage, message)
        }
        return writer.bytes
    }

    /// `google.rpc.Status` with `code` (a gRPC code) and `message`; with `retryDelaySeconds`, its
    /// `details` carry a `google.rpc.RetryInfo` (OTLP/gRPC spec, "Failures": the client waits that long).
    /// Binary only: it is what gRPC sends in `grpc-status-details-bin`.
    package static func status(code: Int32, message: String, retryDelaySeconds: Int?) -> [UInt8] {
        var writer = WireWriter()
        writer.int32Field(Field.RPCStatus.code, code)
        writer.stringField(Field.RPCStatus.message, message)
        if let retryDelaySeconds {
            writer.message(Field.RPCStatus.details) { any in
                any.stringField(Field.AnyMessage.typeURL, "type.googleapis.com/google.rpc.RetryInfo")
                var info = WireWriter()
                info.message(Field.RetryInfo.retryDelay) { duration in
                    duration.int64Field(Field.RetryInfo.seconds, Int64(retryDelaySeconds))
                }
                any.lengthDelimited(Field.AnyMessage.value, info.bytes)
            }
        }
        return writer.bytes
    }

    /// `google.rpc.Status` with `code` (a gRPC code) and `message`.
    package static func status(code: Int32, message: String, json: Bool) -> [UInt8] {
        if json {
            var writer = JSONWriter()
            writer.beginObject()
            writer.key("code")
            writer.raw(String(code))
            writer.key("message")
            writer.string(message)
            writer.endObject()
            return writer.bytes
        }
        var writer = WireWriter()
        writer.int32Field(Field.RPCStatus.code, code)
        writer.stringField(Field.RPCStatus.message, message)
        return writer.bytes
    }
}
