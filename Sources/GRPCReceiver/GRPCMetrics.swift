import GRPCBytes
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
        GRPCCodeName.of(code.rawValue) ?? "CODE_\(code.rawValue)"
    }
}
