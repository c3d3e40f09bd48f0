/// The benchmark's standard request: one service's batch of `spans` generated spans (10 attributes each,
/// `attributeSize`-byte inputs and outputs), protobuf, uncompressed.
package enum StandardBatch {
    package static func body(spans: Int = 100, attributeSize: Int = 256, seed: UInt64 = 1) throws -> [UInt8] {
        var shape = LoadShape()
        shape.services = 1
        shape.spansPerTrace = 20
        shape.traces = (spans + shape.spansPerTrace - 1) / shape.spansPerTrace
        shape.batchSpans = spans
        shape.attributeSize = attributeSize
        shape.childrenFirstShare = 0
        shape.seed = seed
        var first: PlannedRequest?
        try TrafficPlan(shape: shape).buildMain { request in
            if first == nil { first = request }
        }
        return first?.body ?? []
    }
}
