import GRPCBytes
import GRPCCore
import Logging
import OTLPWire
import Receiver

/// `opentelemetry.proto.collector.trace.v1.TraceService/Export` and `grpc.health.v1.Health/Check`,
/// registered by hand (no generated code): the message bytes go to `OTLPExportEndpoint.export`, the
/// same decode, limits, counters and pipeline edge as OTLP/HTTP.
///
/// OTLP spec, "OTLP/gRPC Response": `OK` with `partial_success` for rejected spans; `INVALID_ARGUMENT`
/// for undecodable data; `RESOURCE_EXHAUSTED` over `max_body_size`; `UNAVAILABLE` / `RESOURCE_EXHAUSTED`
/// with `google.rpc.RetryInfo` in `grpc-status-details-bin` to throttle (where OTLP/HTTP answers 503 / 429).
struct OTLPTraceService: RegistrableRPCService {
    static let export = MethodDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService",
                                         method: "Export")
    static let healthCheck = MethodDescriptor(fullyQualifiedService: "grpc.health.v1.Health", method: "Check")
    /// The HTTP/2 `:path` of every method served, for `GRPCStreamGuard` to count the others.
    static let paths: Set<String> = [export, healthCheck].reduce(into: []) { $0.insert("/" + $1.fullyQualifiedMethod) }

    let endpoint: OTLPExportEndpoint
    let metrics: GRPCMetrics

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(forMethod: Self.export, deserializer: RawBytesCoding(), serializer: RawBytesCoding()) {
            request, _ in
            await self.export(request)
        }
        router.registerHandler(forMethod: Self.healthCheck, deserializer: RawBytesCoding(), serializer: RawBytesCoding()) {
            request, _ in
            await self.healthCheck(request)
        }
    }

    func export(_ request: StreamingServerRequest<[UInt8]>) async -> StreamingServerResponse<[UInt8]> {
        let body: [UInt8]
        switch await Self.single(request) {
        case .success(let message): body = message
        case .failure(let error): return answer(endpoint.refuse(error))
        }
        let metadata = request.metadata
        let outcome = await endpoint.export(
            media: .protobuf,
            encoding: metadata[stringValues: GRPCStreamGuard.movedEncodingKey].first(where: { _ in true }),
            experimentHeader: metadata[stringValues: "x-mlflow-experiment-id"].first(where: { _ in true }),
            body: body)
        return answer(outcome)
    }

    func healthCheck(_ request: StreamingServerRequest<[UInt8]>) async -> StreamingServerResponse<[UInt8]> {
        let service: String
        do {
            guard case .success(let message) = await Self.single(request) else {
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

    /// The one message of a unary call. None (the stream ended inside a message: truncated) or more
    /// than one is a malformed request.
    static func single(_ request: StreamingServerRequest<[UInt8]>) async -> Result<[UInt8], ReceiverError> {
        var messages = request.messages.makeAsyncIterator()
        do {
            guard let first = try await messages.next() else {
                return .failure(.malformedBody("the call carries no complete gRPC message (truncated?)"))
            }
            guard try await messages.next() == nil else {
                return .failure(.malformedBody("a unary call carries more than one message"))
            }
            return .success(first)
        } catch {
            return .failure(.malformedBody("the request stream failed: \(error)"))
        }
    }

    /// The gRPC answer for an export's outcome, counted by status code.
    func answer(_ outcome: ExportOutcome) -> StreamingServerResponse<[UInt8]> {
        switch outcome {
        case .accepted(let rejectedSpans, let message):
            metrics.count(.ok)
            let body = OTLPResponses.exportResponse(rejectedSpans: Int64(rejectedSpans), errorMessage: message, json: false)
            return StreamingServerResponse(single: ServerResponse(message: body))
        case .refused(let error):
            let rpcError = Self.rpcError(error)
            metrics.count(Status.Code(rpcError.code))
            return StreamingServerResponse(error: rpcError)
        }
    }

    /// `ReceiverError.rpcCode` as an `RPCError`; a throttling refusal carries `google.rpc.RetryInfo`
    /// (and the whole `google.rpc.Status`) in `grpc-status-details-bin`.
    static func rpcError(_ error: ReceiverError) -> RPCError {
        let code = Status.Code(rawValue: Int(error.rpcCode)).flatMap(RPCError.Code.init) ?? .internalError
        var metadata: Metadata = [:]
        if let retryAfter = error.retryAfterSeconds {
            metadata.addBinary(OTLPResponses.status(code: error.rpcCode, message: error.message, retryDelaySeconds: retryAfter),
                               forKey: "grpc-status-details-bin")
        }
        return RPCError(code: code, message: error.message, metadata: metadata)
    }
}
