extension OTLPTraceDecoder {
    /// `spans`, all of one payload, moved into a payload of their own that holds only them: the
    /// `ExportTraceServiceRequest` that forwarding them would send (their resources, scopes and span
    /// bytes, copied), decoded like any request. For spans that outlive the rest of their request, so
    /// that they stop keeping the whole body alive.
    ///
    /// Returns the records in the order given, each pointing into the new payload (same ids, times and
    /// experiment; every consumer reads them as before); nil when `spans` is empty, mixes payloads, or
    /// holds one span id of a trace twice (the caller then keeps the records it has).
    package static func compacted(_ spans: [SpanRecord]) -> [SpanRecord]? {
        guard let payload = spans.first?.payload, spans.allSatisfy({ $0.payload === payload }) else { return nil }
        let request = OTLPTraceEncoder.encodeRequest(spans)
        // These bytes were taken from a request that decoded, span by span, so they decode again.
        guard let batch = try? decode(request, experimentID: payload.experimentID),
              batch.spans.count == spans.count else { return nil }
        // The encoder groups spans by resource and scope, so the order can differ: match by ids.
        var byID: [SpanKey: SpanRecord] = [:]
        byID.reserveCapacity(spans.count)
        for record in batch.spans {
            byID[SpanKey(record)] = record
        }
        let moved = spans.compactMap { byID[SpanKey($0)] }
        return byID.count == spans.count && moved.count == spans.count ? moved : nil
    }
}

private struct SpanKey: Hashable {
    var traceID: TraceID
    var spanID: SpanID

    init(_ record: SpanRecord) {
        traceID = record.traceID
        spanID = record.spanID
    }
}
