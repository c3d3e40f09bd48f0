import Deflate
import OTLPWire
import StitchTestSupport

/// One request body as a service's SDK would send it: the spans of one service, of one or more traces.
package struct PlannedRequest: Sendable {
    /// The body as sent (gzip-compressed when the shape says so).
    package var body: [UInt8]
    /// Spans in the body.
    package var spans: Int
    /// Size of what a collector holds for the request's never-closing span once the rest of the request
    /// is gone, if it has one: the request of that span alone (its resource, scope and span), encoded.
    package var openSpanRequestBytes = 0
    /// Size of the body before compression.
    package var encodedBytes: Int
    /// A second copy of an earlier request (a client retry); its spans are not new.
    package var isDuplicate: Bool
}

/// Turns a `LoadShape` into the requests to send, in order, and the traces the store must end up with.
///
/// Traces are sent in chunks of `shape.chunkTraces`: for each chunk, every service sends its spans of
/// the chunk's traces in batches of at most `batchSpans` spans. A chunk chosen for `childrenFirstShare`
/// sends its services in reverse order, so that children arrive before their roots. Late spans are held
/// back and emitted as a separate list, batched by service.
package struct TrafficPlan: Sendable {
    package var shape: LoadShape
    package var traces: [PlannedTrace]

    package init(shape: LoadShape) {
        self.shape = shape
        traces = (0..<shape.traces).map { PlannedTrace.generate(index: $0, shape: shape) }
    }

    /// Total spans of all traces (each counted once).
    package var uniqueSpans: Int { traces.reduce(0) { $0 + $1.spanCount } }

    /// Builds every request of the main phase, in send order, handing each to `emit` as it is encoded
    /// (so that the caller can turn it into its own buffer without holding two copies).
    package func buildMain(_ emit: (PlannedRequest) throws -> Void) throws {
        let content = SpanContent(attributeSize: shape.attributeSize)
        var duplicates = DuplicateScheduler(shape: shape)
        let chunk = shape.chunkTraces
        var chunkIndex = 0
        var requestIndex = 0
        var first = 0
        while first < traces.count {
            let members = first..<min(first + chunk, traces.count)
            var orderRandom = SplitMix64(seed: shape.seed, stream: RandomStream.chunkOrder.rawValue, item: UInt64(chunkIndex))
            let childrenFirst = orderRandom.chance(shape.childrenFirstShare)
            let services = Array(0..<shape.servicesPerTrace)
            for service in childrenFirst ? Array(services.reversed()) : services {
                var pending: [(trace: Int, spans: Range<Int>)] = []
                var pendingSpans = 0
                func flush() throws {
                    guard pendingSpans > 0 else { return }
                    let request = try encode(
                        service: service, parts: pending, content: content,
                        openSpan: shape.openSpanPerRequest ? requestIndex : nil)
                    requestIndex += 1
                    try duplicates.emit(request, emit)
                    pending.removeAll(keepingCapacity: true)
                    pendingSpans = 0
                }
                for traceIndex in members {
                    let trace = traces[traceIndex]
                    guard service < trace.serviceCount else { continue }
                    var spans = trace.spans(ofService: service)
                    if let late = trace.lateSpan, spans.contains(late) {
                        // The late span is the trace's last span, so it ends the range.
                        spans = spans.lowerBound..<late
                    }
                    while !spans.isEmpty {
                        let take = min(spans.count, shape.batchSpans - pendingSpans)
                        pending.append((traceIndex, spans.lowerBound..<(spans.lowerBound + take)))
                        pendingSpans += take
                        spans = (spans.lowerBound + take)..<spans.upperBound
                        if pendingSpans == shape.batchSpans { try flush() }
                    }
                }
                try flush()
            }
            first = members.upperBound
            chunkIndex += 1
        }
        try duplicates.finish(emit)
    }

    /// The requests carrying the held-back late spans, batched per service, in trace order.
    package func buildLate(_ emit: (PlannedRequest) throws -> Void) throws {
        let content = SpanContent(attributeSize: shape.attributeSize)
        for service in 0..<shape.servicesPerTrace {
            var pending: [(trace: Int, spans: Range<Int>)] = []
            for (index, trace) in traces.enumerated() {
                guard let late = trace.lateSpan, trace.service(ofSpan: late) == service else { continue }
                pending.append((index, late..<(late + 1)))
                if pending.count == shape.batchSpans {
                    try emit(encode(service: service, parts: pending, content: content))
                    pending.removeAll(keepingCapacity: true)
                }
            }
            if !pending.isEmpty { try emit(encode(service: service, parts: pending, content: content)) }
        }
    }

    private func encode(
        service: Int, parts: [(trace: Int, spans: Range<Int>)], content: SpanContent, openSpan: Int? = nil
    ) throws -> PlannedRequest {
        var spans: [SpanDetail] = []
        var openSpanRequestBytes = 0
        if let openSpan {
            let span = openTraceSpan(openSpan)
            spans.append(span)
            openSpanRequestBytes = OTLPTraceEncoder.encodeRequest(resourceSpans: [ResourceSpansDetail(
                resource: content.resource(service: service),
                scopeSpans: [ScopeSpansDetail(scope: content.scope, spans: [span])])]).count
        }
        for part in parts {
            let trace = traces[part.trace]
            for span in part.spans { spans.append(content.span(span, of: trace)) }
        }
        let request = [ResourceSpansDetail(
            resource: content.resource(service: service),
            scopeSpans: [ScopeSpansDetail(scope: content.scope, spans: spans)])]
        let protobuf = OTLPTraceEncoder.encodeRequest(resourceSpans: request)
        let encoded: [UInt8]
        switch shape.format {
        case .protobuf: encoded = protobuf
        case .json: encoded = try OTLPJSON.jsonFromProtobuf(protobuf)
        }
        let body = shape.gzip ? Deflate.compress(encoded, format: .gzip) : encoded
        return PlannedRequest(
            body: body, spans: spans.count, openSpanRequestBytes: openSpanRequestBytes,
            encodedBytes: encoded.count, isDuplicate: false)
    }

    /// The never-closing span of request `index` (`LoadShape.openSpanPerRequest`): a trace of its own
    /// whose parent is never sent. Its ids come from their own stream, so they meet no planned trace.
    private func openTraceSpan(_ index: Int) -> SpanDetail {
        var random = SplitMix64(seed: shape.seed, stream: RandomStream.openSpans.rawValue, item: UInt64(index))
        let start = 1_749_945_600_000_000_000 + UInt64(index) * 1_000_000
        return SpanDetail(
            traceID: TraceID(high: random.next() | 1, low: random.next()), spanID: SpanID(raw: random.next() | 1),
            parentSpanID: SpanID(raw: random.next() | 1), name: "wait_for_approval", kind: 1,
            startTimeUnixNano: start, endTimeUnixNano: start + 1_000_000,
            attributes: [KeyValue(key: "mlflow.spanType", value: .string("\"TOOL\""))], statusCode: 0, flags: 0x100)
    }
}

/// Re-sends a `duplicateRate` share of requests a few requests later, as a retrying client does.
private struct DuplicateScheduler {
    private var random: SplitMix64
    private let rate: Double
    private var waiting: [(remaining: Int, request: PlannedRequest)] = []

    init(shape: LoadShape) {
        random = SplitMix64(seed: shape.seed, stream: RandomStream.duplicates.rawValue, item: 0)
        rate = shape.duplicateRate
    }

    mutating func emit(_ request: PlannedRequest, _ emit: (PlannedRequest) throws -> Void) throws {
        try emit(request)
        var index = 0
        while index < waiting.count {
            waiting[index].remaining -= 1
            if waiting[index].remaining <= 0 {
                try emit(waiting.remove(at: index).request)
            } else {
                index += 1
            }
        }
        if random.chance(rate) {
            var copy = request
            copy.isDuplicate = true
            waiting.append((1 + Int(random.next() % 8), copy))
        }
    }

    mutating func finish(_ emit: (PlannedRequest) throws -> Void) throws {
        for entry in waiting { try emit(entry.request) }
        waiting.removeAll()
    }
}

/// Streams of randomness, one per decision kind, so that changing one option does not reshuffle the rest.
enum RandomStream: UInt64 {
    case traceShape = 1
    case chunkOrder = 2
    case duplicates = 3
    case late = 4
    case openSpans = 5
}
