import GRPCCore
import Metrics

/// `stitch_grpc_requests_total{code}`: every OTLP/gRPC answer by its status code, the gRPC
/// counterpart of `stitch_http_requests_total{status}` (the other counters are `ReceiverMetrics`'
/// with `protocol="grpc"`).
struct GRPCMetrics: Sendable {
    private let byCode: [Int: Counter]

    /// Made up front for every code, so that counting an answer never looks up the registry.
    init(factory: any MetricsFactory) {
        var byCode: [Int: Counter] = [:]
        for raw in 0...16 {
            guard let code = Status.Code(rawValue: raw) else { continue }
            byCode[raw] = Counter(label: "stitch_grpc_requests_total", dimensions: [("code", Self.name(code))], factory: factory)
        }
        self.byCode = byCode
    }

    func count(_ code: Status.Code) {
        byCode[code.rawValue]?.increment()
    }

    /// The canonical upper-case name (`RESOURCE_EXHAUSTED`), as gRPC's own tools print it.
    static func name(_ code: Status.Code) -> String {
        switch code {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internalError: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        default: "CODE_\(code.rawValue)"
        }
    }
}
