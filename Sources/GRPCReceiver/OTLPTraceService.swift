import GRPCBytes
import GRPCCore
import Logging
import OTLPWire
import Receiver

/// The gRPC methods Stitch serves. `TraceService/Export` is answered by `GRPCStreamGuard` on the
/// stream itself (the message bytes go to `OTLPExportEndpoint.export`, the same decode, limits,
/// counters and pipeline edge as OTLP/HTTP); `grpc.health.v1.Health/Check` is registered here with
/// grpc-swift's router, by hand (no generated code).
///
/// OTLP spec, "OTLP/gRPC Response": `OK` with `partial_success` for rejected spans; `INVALID_ARGUMENT`
/// for undecodable data; `RESOURCE_EXHAUSTED` over `max_body_size`; `UNAVAILABLE` / `RESOURCE_EXHAUSTED`
/// with `google.rpc.RetryInfo` in `grpc-status-details-bin` to throttle (where OTLP/HTTP answers 503 / 429).
struct OTLPTraceService: RegistrableRPCService {
    static let export = MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService",
                                         method: "Export")
    static let healthCheck = MethodDescriptor(fullyQualifiedService: "grpc.health.v1.Health", method: "Check")
    /// The HTTP/2 `:path` of Export, answered by `GRPCStreamGuard`.
    static let exportPath = "/" + export.fullyQualifiedMethod
    /// The HTTP/2 `:path` of every method served, for `GRPCStreamGuard` to count the others.
    static let paths: Set<String> = [export, healthCheck].reduce(into: []) { $0.insert("/" + $1.fullyQualifiedMethod) }

    let metrics: GRPCMetrics

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(forMethod: Self.healthCheck, deserializer: RawBytesCoding(), serializer: RawBytesCoding()) {
            request, _ in
            await self.healthCheck(request)
        }
    }

    func healthCheck(_ request: StreamingServerRequest<[UInt8]>) async -> StreamingServerResponse<[UInt8]> {
        let service: String
        do {
            guard let message = await Self.single(request) else {
                throw WireError("no complete HealthCheckRequest")
            }
            service = try HealthMessages.requestedService(message)
        } catch {
            metrics.count(.invalidArgument)
            return StreamingServerResponse(error: RPCError(code: .invalidArgument, message: "\(error)"))
        }
        // The server as a whole ("") and the trace service are served while the process runs; during
        // graceful shutdown the transport stops taking new streams.
        let known = service.isEmpty || service == Self.export.service.fullyQualifiedService
        metrics.count(.ok)
        return StreamingServerResponse(single: ServerResponse(message: HealthMessages.response(known ? .serving : .serviceUnknown)))
    }

    /// The one message of a unary call; nil for none (truncated) or more than one.
    static func single(_ request: StreamingServerRequest<[UInt8]>) async -> [UInt8]? {
        var messages = request.messages.makeAsyncIterator()
        do {
            guard let first = try await messages.next(), try await messages.next() == nil else { return nil }
            return first
        } catch {
            return nil
        }
    }
}
