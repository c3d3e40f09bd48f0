import StitchTestSupport
import OTLPWire
@testable import TraceAssembler
import TraceEdge

/// Builds span records without the wire decoder: one resource and scope per payload, and a span's
/// "encoded bytes" are just a range of the wanted length (the assembler only reads them to compact a
/// payload, which a span's own payload never needs: it is all span).
enum TestSpans {
    static func payload(experimentID: String? = nil, service: String = "svc") -> RequestPayload {
        RequestPayload(
            bytes: [],
            resources: [ResourceEntry(resourceBytes: 0..<0, schemaURL: 0..<0, serviceName: service)],
            scopes: [ScopeEntry(resourceIndex: 0, scopeBytes: 0..<0, schemaURL: 0..<0)],
            experimentID: experimentID)
    }

    /// A span of trace `trace` with id `id` and parent `parent` (0: a root). `serial` goes into the
    /// start time, so tests can tell two records with the same ids apart. Without `payload`, the span
    /// gets a payload of its own of `size` bytes (so it is charged `size` buffered bytes); a payload from
    /// `payload(experimentID:service:)` has no bytes and is charged nothing.
    static func span(
        trace: UInt64, id: UInt64, parent: UInt64 = 0, size: Int = 100, flags: UInt32 = 0x100,
        serial: UInt64 = 0, payload: RequestPayload? = nil
    ) -> SpanRecord {
        let payload = payload ?? RequestPayload(
            bytes: [UInt8](repeating: 0, count: size),
            resources: [ResourceEntry(resourceBytes: 0..<0, schemaURL: 0..<0, serviceName: "svc")],
            scopes: [ScopeEntry(resourceIndex: 0, scopeBytes: 0..<0, schemaURL: 0..<0)],
            experimentID: nil)
        return SpanRecord(
            traceID: TraceID(high: 0xABCD, low: trace), spanID: SpanID(raw: id), parentSpanID: SpanID(raw: parent),
            startTimeUnixNano: serial, endTimeUnixNano: serial + 1,
            flags: flags, kind: 1, statusCode: 0,
            scopeIndex: 0, spanBytes: 0..<size, payload: payload)
    }

    static func traceID(_ trace: UInt64) -> TraceID { TraceID(high: 0xABCD, low: trace) }
}

extension FinishedTrace {
    /// The span ids, in release order.
    var spanIDs: [UInt64] { spans.map(\.spanID.raw) }
}

/// Drives an `AssemblerState` through time and keeps every release, for readable tests.
struct Harness {
    var state: AssemblerState<TestInstant>
    var now = TestInstant.zero
    private(set) var releases: [FinishedTrace] = []

    init(_ configuration: AssemblerConfiguration) {
        state = AssemblerState(configuration: configuration)
    }

    /// Receives at the current time; returns the summary and the releases of this call.
    @discardableResult
    mutating func receive(_ spans: [SpanRecord]) -> (summary: IngestSummary, released: [FinishedTrace]) {
        let (summary, released) = state.receive(spans, now: now)
        releases += released
        return (summary, released)
    }

    /// Moves to `seconds` and ticks; returns the releases of this tick.
    @discardableResult
    mutating func tick(at seconds: Double) -> [FinishedTrace] {
        now = .seconds(seconds)
        let released = state.tick(now: now)
        releases += released
        return released
    }

    @discardableResult
    mutating func flush() -> [FinishedTrace] {
        let released = state.flush(now: now)
        releases += released
        return released
    }
}
