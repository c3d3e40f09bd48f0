import GRPCCore

/// gRPC messages as the bytes on the wire, for the receiver and the exporter alike: the OTLP messages
/// are read by the zero-copy decoder and written by the package's own encoder, never by swift-protobuf.
package struct RawBytesCoding: MessageSerializer, MessageDeserializer {
    package typealias Message = [UInt8]

    package init() {}

    package func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }

    package func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        // One copy out of the transport's buffer, as the HTTP receiver makes one out of NIO's: decoded
        // spans refer into this array for as long as they live.
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// The canonical upper-case names of gRPC status codes (`RESOURCE_EXHAUSTED`), as gRPC's tools print them.
package enum GRPCCodeName {
    private static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    /// The name of the code with this number, nil for a number gRPC does not define.
    package static func of(_ rawValue: Int) -> String? {
        names.indices.contains(rawValue) ? names[rawValue] : nil
    }
}
