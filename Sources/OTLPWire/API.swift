// CONTRACT STUBS — replaced by the real implementation (OTLPWire helper). Signatures are the contract.

public enum OTLPJSON {
    /// Converts an OTLP/JSON `ExportTraceServiceRequest` to its protobuf encoding (hex ids, base64 ids
    /// where the length says so, int64 as string or number, enums as integers, unknown fields ignored).
    public static func protobufFromJSON(_ json: [UInt8]) throws(WireError) -> [UInt8] { throw WireError("not implemented") }
}
