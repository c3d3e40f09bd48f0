import OTLPWire
import StitchTestSupport

/// One generated trace: its ids and tree, which is what the end-to-end check compares the store with.
///
/// Spans are numbered service by service: service 0 holds the root (span 0); the first span of every
/// other service is its entry span, whose parent is a span of the previous service (the remote-parent
/// edge of a cross-process call, span flags 0x300); every other span's parent is an earlier span of
/// its own service. The last span is therefore a leaf, and is the one held back for a late send.
package struct PlannedTrace: Sendable {
    package var traceID: TraceID
    package var spanIDs: [SpanID]
    /// `SpanID.none` for the root.
    package var parents: [SpanID]
    /// `serviceStarts[k]` is the first span of service `k`; the last element is the span count.
    package var serviceStarts: [Int]
    /// The span sent late, if this trace is one of the `late-rate` share.
    package var lateSpan: Int?
    /// Start of the root span, Unix nanoseconds.
    package var startTimeUnixNano: UInt64

    package var spanCount: Int { spanIDs.count }
    package var serviceCount: Int { serviceStarts.count - 1 }

    package func spans(ofService service: Int) -> Range<Int> {
        serviceStarts[service]..<serviceStarts[service + 1]
    }

    package func service(ofSpan span: Int) -> Int {
        var service = 0
        while serviceStarts[service + 1] <= span { service += 1 }
        return service
    }

    /// Span flags: every span says whether its parent is remote (0x100), and entry spans of
    /// non-root services have a remote parent (0x200) (otlp.md, "SDK behaviour").
    package func flags(ofSpan span: Int) -> UInt32 {
        let service = service(ofSpan: span)
        return service > 0 && serviceStarts[service] == span ? 0x300 : 0x100
    }

    /// The trace with index `index` of the stream seeded by `shape.seed`; independent of `shape.traces`.
    package static func generate(index: Int, shape: LoadShape) -> PlannedTrace {
        // The trace stream depends on the seed and the tree shape (not on how many traces are sent), so
        // that runs of different shapes against one store do not reuse each other's trace ids.
        let stream = RandomStream.traceShape.rawValue ^ UInt64(shape.spansPerTrace) << 8 ^ UInt64(shape.services) << 40
        var random = SplitMix64(seed: shape.seed, stream: stream, item: UInt64(index))
        let traceID = TraceID(high: random.next() | 1, low: random.next())
        let spanCount = shape.spansPerTrace
        let services = shape.servicesPerTrace
        var starts = [0]
        for service in 0..<services {
            starts.append(starts[service] + spanCount / services + (service < spanCount % services ? 1 : 0))
        }
        var spanIDs: [SpanID] = []
        spanIDs.reserveCapacity(spanCount)
        var used = Set<UInt64>()
        while spanIDs.count < spanCount {
            let raw = random.next()
            if raw != 0, used.insert(raw).inserted { spanIDs.append(SpanID(raw: raw)) }
        }
        var parents = [SpanID](repeating: .none, count: spanCount)
        for service in 0..<services {
            let entry = starts[service]
            if service > 0 {
                let previous = starts[service - 1]..<starts[service]
                parents[entry] = spanIDs[previous.lowerBound + Int(random.next() % UInt64(previous.count))]
            }
            for span in (entry + 1)..<starts[service + 1] {
                parents[span] = spanIDs[entry + Int(random.next() % UInt64(span - entry))]
            }
        }
        let isLate = spanCount >= 2 && random.chance(shape.lateRate)
        // Fixed base time (2025-06-15T00:00:00Z) so that the traffic is the same on every run.
        let start = 1_749_945_600_000_000_000 + UInt64(index) * 1_000_000
        return PlannedTrace(
            traceID: traceID, spanIDs: spanIDs, parents: parents, serviceStarts: starts,
            lateSpan: isLate ? spanCount - 1 : nil, startTimeUnixNano: start)
    }
}

/// Names of the generated services (the `service.name` resource attribute).
package enum ServiceNames {
    static let known = ["agent", "retriever", "llm-gateway", "tools", "memory"]

    package static func name(_ service: Int) -> String {
        service < known.count ? known[service] : "service-\(service)"
    }

    /// What Stitch records in `stitch.services` for a trace of `count` services: the sorted names
    /// joined by commas (only when a trace has more than one service).
    package static func servicesTag(count: Int) -> String {
        (0..<count).map(name).sorted().joined(separator: ",")
    }
}
