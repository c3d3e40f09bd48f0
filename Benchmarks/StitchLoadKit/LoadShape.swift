/// What traffic to generate: the shape of every trace and how the SDKs of the services send it.
package struct LoadShape: Sendable, Equatable {
    /// Services (processes) per trace; each exports its own spans under its own resource.
    package var services = 3
    /// Spans per trace, spread evenly over the services.
    package var spansPerTrace = 20
    /// Traces to generate.
    package var traces = 1_000
    /// Bytes of each span's `mlflow.spanInputs` and `mlflow.spanOutputs` value.
    package var attributeSize = 256
    /// Share of traces whose child services' requests are sent before the root service's.
    package var childrenFirstShare = 0.5
    /// Share of requests sent twice (a client retry), shortly after the first copy.
    package var duplicateRate = 0.0
    /// Share of traces that hold back one leaf span and send it after the main traffic plus a delay.
    package var lateRate = 0.0
    /// Spans per request at most (the OTel SDK's `BatchSpanProcessor` default is 512).
    package var batchSpans = 512
    /// Traces open at once: the generator sends the traces in chunks of this many, every service's
    /// batches of a chunk before the next chunk. 0 chooses the chunk that one batch per service covers.
    package var openTraces = 0
    /// Every request of the main phase also carries one small span of a trace of its own that never
    /// closes (its parent is never sent): a span that outlives the rest of its request in the collector.
    package var openSpanPerRequest = false
    /// Seed of every random choice.
    package var seed: UInt64 = 1
    /// The `x-mlflow-experiment-id` header, if any.
    package var experimentID: String?
    package var format = BodyFormat.protobuf
    package var gzip = false

    package init() {}

    /// Every problem with the shape, one message each (empty when valid).
    package func problems() -> [String] {
        var problems: [String] = []
        if services < 1 { problems.append("services must be at least 1, got \(services)") }
        if spansPerTrace < 1 { problems.append("spans-per-trace must be at least 1, got \(spansPerTrace)") }
        if traces < 1 { problems.append("traces must be at least 1, got \(traces)") }
        if attributeSize < 16 { problems.append("attr-size must be at least 16 bytes, got \(attributeSize)") }
        for (name, share) in [("children-first-share", childrenFirstShare), ("duplicate-rate", duplicateRate), ("late-rate", lateRate)]
        where !(0...1).contains(share) {
            problems.append("\(name) must be within 0…1, got \(share)")
        }
        if batchSpans < 1 { problems.append("batch-spans must be at least 1, got \(batchSpans)") }
        if openTraces < 0 { problems.append("open-traces must be 0 (automatic) or more, got \(openTraces)") }
        return problems
    }

    /// Services a trace actually uses (a trace cannot have more services than spans).
    package var servicesPerTrace: Int { min(services, spansPerTrace) }

    /// Traces per chunk: `openTraces`, or as many as one batch per service holds.
    package var chunkTraces: Int {
        if openTraces > 0 { return openTraces }
        let perService = (spansPerTrace + servicesPerTrace - 1) / servicesPerTrace
        return max(1, batchSpans / perService)
    }
}

/// The body encoding of the generated requests.
package enum BodyFormat: String, Sendable, CaseIterable {
    case protobuf
    case json

    package var contentType: String {
        switch self {
        case .protobuf: return "application/x-protobuf"
        case .json: return "application/json"
        }
    }
}
