import OTLPWire

/// Distributed traces made up for tests: each trace has `services` services, the first holding the
/// root, each next one a child of a span of the previous service (a remote-parent edge).
package struct SyntheticTraces: Sendable {
    package var traceCount: Int
    package var spansPerService: Int
    package var services: [String]
    /// Offsets trace ids so that two sets do not collide.
    package var seed: UInt64

    package init(traceCount: Int, spansPerService: Int, services: [String], seed: UInt64 = 1) {
        self.traceCount = traceCount
        self.spansPerService = spansPerService
        self.services = services
        self.seed = seed
    }

    package var spansPerTrace: Int { spansPerService * services.count }

    package func traceID(_ index: Int) -> TraceID { TraceID(high: seed &* 0x9E37_79B9_7F4A_7C15 | 1, low: UInt64(index + 1)) }

    func spanID(trace: Int, service: Int, span: Int) -> SpanID {
        SpanID(raw: UInt64(trace + 1) << 32 | UInt64(service + 1) << 16 | UInt64(span + 1))
    }

    /// One export request per service (as each service's SDK would send it), for traces in `range`.
    package func requests(traces range: Range<Int>) -> [(service: String, body: [UInt8])] {
        services.indices.map { service in
            let spans = range.flatMap { trace in
                (0..<spansPerService).map { span in self.span(trace: trace, service: service, span: span) }
            }
            let resource = ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string(services[service]))])
            let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [
                ResourceSpansDetail(resource: resource, scopeSpans: [ScopeSpansDetail(scope: ScopeDetail(name: "test", version: "1"), spans: spans)]),
            ])
            return (services[service], body)
        }
    }

    func span(trace: Int, service: Int, span: Int) -> SpanDetail {
        let parent: SpanID
        var flags: UInt32 = 0x100
        if span > 0 {
            parent = spanID(trace: trace, service: service, span: 0)
        } else if service > 0 {
            parent = spanID(trace: trace, service: service - 1, span: spansPerService - 1)
            flags = 0x300
        } else {
            parent = .none
        }
        let start = 1_700_000_000_000_000_000 + UInt64(trace) * 1_000_000 + UInt64(service * spansPerService + span) * 1000
        return SpanDetail(
            traceID: traceID(trace), spanID: spanID(trace: trace, service: service, span: span), parentSpanID: parent,
            name: "\(services[service])-\(span)", kind: span == 0 ? 2 : 1, startTimeUnixNano: start, endTimeUnixNano: start + 500,
            attributes: [KeyValue(key: "mlflow.spanType", value: .string("\"CHAIN\"")),
                         KeyValue(key: "index", value: .int(Int64(span)))],
            statusCode: 1, flags: flags)
    }
}
