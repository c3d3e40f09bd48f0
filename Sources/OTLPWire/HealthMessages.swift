/// The two tiny messages of the standard gRPC health service (`grpc.health.v1.Health/Check`),
/// encoded by hand: `HealthCheckRequest { string service = 1; }` and
/// `HealthCheckResponse { ServingStatus status = 1; }`.
package enum HealthMessages {
    /// `HealthCheckResponse.ServingStatus` values.
    package enum ServingStatus: Int32, Sendable {
        case serving = 1
        case notServing = 2
        case serviceUnknown = 3
    }

    /// The `service` a `HealthCheckRequest` asks about ("" for the server as a whole).
    package static func requestedService(_ bytes: [UInt8]) throws(WireError) -> String {
        var service = ""
        try bytes.withUnsafeBufferPointer { (buffer) throws(WireError) in
            var reader = WireReader(buffer, 0..<buffer.count)
            while let tag = try reader.readTag() {
                if tag.number == Field.Health.service, tag.wireType == .lengthDelimited {
                    let range = try reader.readLengthDelimited()
                    service = String(decoding: UnsafeBufferPointer(rebasing: buffer[range]), as: UTF8.self)
                } else {
                    try reader.skip(tag.wireType)
                }
            }
        }
        return service
    }

    package static func response(_ status: ServingStatus) -> [UInt8] {
        var writer = WireWriter()
        writer.int32Field(Field.Health.status, status.rawValue)
        return writer.bytes
    }
}
