import GRPCCore

/// gRPC messages as the bytes on the wire: the request goes to the zero-copy decoder
/// (`OTLPTraceDecoder`) as it is, the response is encoded by `OTLPResponses`; no swift-protobuf.
struct RawBytesCoding: MessageSerializer, MessageDeserializer {
    typealias Message = [UInt8]

    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        // One copy out of the transport's buffer, as the HTTP receiver makes one out of NIO's: the
        // decoded spans refer into this array for as long as they live.
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
