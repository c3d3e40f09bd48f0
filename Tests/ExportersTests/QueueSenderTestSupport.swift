import Exporters
import Foundation
import Logging
import Metrics
import OTLPWire
import Receiver
import StitchTestSupport
import Synchronization
import TraceEdge

// MARK: - Logs

/// Captures every log line (level, message and metadata rendered as text).
final class ExportTestLogs: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: String
        var text: String { message + " " + metadata }
    }

    private let storage = Mutex<[Line]>([])

    var lines: [Line] { storage.withLock { $0 } }

    func logger(_ label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in Handler(logs: self) }
        logger.logLevel = .trace
        return logger
    }

    fileprivate func append(_ line: Line) { storage.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let logs: ExportTestLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            logs.append(Line(level: event.level, message: "\(event.message)", metadata: rendered))
        }
    }
}

// MARK: - Queue and dead letters

/// An in-memory `DeliveryQueue`: hands out the given traces in order, then answers nil (closed).
final class InMemoryDeliveryQueue: DeliveryQueue {
    private struct State {
        var items: [QueuedTrace]
        var position = 0
        var acknowledged: UInt64?
        var requestedLimits: [(maxTraces: Int, maxBytes: Int)] = []
        var batches: [[UInt64]] = []
    }

    private let state: Mutex<State>

    init(_ traces: [FinishedTrace]) {
        let items = traces.enumerated().map { QueuedTrace(sequence: UInt64($0.offset + 1), trace: $0.element, enqueuedAtMs: 0) }
        state = Mutex(State(items: items))
    }

    /// The highest sequence acknowledged.
    var acknowledgedThrough: UInt64? { state.withLock { $0.acknowledged } }
    /// The sequences of each batch handed out.
    var batches: [[UInt64]] { state.withLock { $0.batches } }
    var requestedMaxTraces: [Int] { state.withLock { $0.requestedLimits.map(\.maxTraces) } }

    func next(maxTraces: Int, maxBytes: Int) async -> [QueuedTrace]? {
        state.withLock { state in
            state.requestedLimits.append((maxTraces, maxBytes))
            guard state.position < state.items.count else { return nil }
            var batch: [QueuedTrace] = []
            var bytes = 0
            while state.position < state.items.count, batch.count < maxTraces {
                let item = state.items[state.position]
                if !batch.isEmpty && bytes + item.trace.encodedBytes > maxBytes { break }
                batch.append(item)
                bytes += item.trace.encodedBytes
                state.position += 1
            }
            state.batches.append(batch.map(\.sequence))
            return batch
        }
    }

    func acknowledge(through sequence: UInt64) throws {
        state.withLock { state in
            precondition(sequence >= state.acknowledged ?? 0, "acknowledged out of order")
            state.acknowledged = sequence
        }
    }

    func refreshMetrics() {}
}

/// A `DeadLetterSink` that remembers what it got, and can fail its first `failures` appends.
final class RecordingDeadLetters: DeadLetterSink {
    struct Entry: Sendable {
        var traceIDs: [TraceID]
        var reason: String
        var response: String
    }

    struct DiskFull: Error {}

    private let state: Mutex<(entries: [Entry], failuresLeft: Int)>

    init(failures: Int = 0) { state = Mutex(([], failures)) }

    var entries: [Entry] { state.withLock { $0.entries } }

    func append(_ traces: [FinishedTrace], reason: String, response: String) throws {
        try state.withLock { state in
            if state.failuresLeft > 0 {
                state.failuresLeft -= 1
                throw DiskFull()
            }
            state.entries.append(Entry(traceIDs: traces.map(\.traceID), reason: reason, response: response))
        }
    }
}

// MARK: - Outcomes

extension DeliveryOutcome {
    var retryable: (reason: String, after: Duration?)? {
        if case .retryable(let reason, let after) = self { return (reason, after) }
        return nil
    }

    var permanent: (reason: String, response: String)? {
        if case .permanent(let reason, let response) = self { return (reason, response) }
        return nil
    }
}

/// Delivers one small trace through a destination made for a port nothing listens on.
func deliverToClosedPort(_ make: (Int) throws -> any TraceExporter) async throws -> DeliveryOutcome {
    let destination = try make(try await ScriptedHTTPServer.closedPort())
    let outcome = await destination.deliver([try ExportTestTraces.synthetic(trace: 1, spanCount: 1)])
    await destination.shutdown()
    return outcome
}

// MARK: - Traces

/// Finished traces built from real captured requests, or synthesized through the wire encoder.
enum ExportTestTraces {
    /// The captured two-service trace (fixtures 01: service-a with the root, 02: service-b), its
    /// spans in the order given by `serviceBFirst`.
    static func stitchedFixtureTrace(serviceBFirst: Bool = true, reason: ReleaseReason = .closed) throws -> FinishedTrace {
        let a = try OTLPTraceDecoder.decode(Fixtures.bytes("01"), experimentID: "1")
        let b = try OTLPTraceDecoder.decode(Fixtures.bytes("02"), experimentID: nil)
        let spans = serviceBFirst ? b.spans + a.spans : a.spans + b.spans
        return FinishedTrace(traceID: a.spans[0].traceID, spans: spans, reason: reason, isComplete: reason == .closed, experimentID: "1")
    }

    /// A trace of `spanCount` spans under `services.count` resources (round-robin), each span
    /// carrying `payloadBytes` of incompressible attribute bytes. Span 1 is the root.
    static func synthetic(
        trace: UInt64, spanCount: Int, payloadBytes: Int = 16, services: [String] = ["svc"],
        reason: ReleaseReason = .closed, experimentID: String? = nil
    ) throws -> FinishedTrace {
        var generator = TestBytes(seed: trace)
        let traceID = TraceID(high: 0x5717_C400, low: trace)
        var resourceSpans: [ResourceSpansDetail] = []
        for (serviceIndex, service) in services.enumerated() {
            var spans: [SpanDetail] = []
            for index in 0..<spanCount where index % services.count == serviceIndex {
                let start = 1_000 + UInt64(index)
                let blob = KeyValue(key: "blob", value: .bytes(generator.bytes(payloadBytes)))
                spans.append(SpanDetail(
                    traceID: traceID, spanID: SpanID(raw: UInt64(index + 1)),
                    parentSpanID: SpanID(raw: index == 0 ? 0 : 1), name: "span-\(index)", kind: 1,
                    startTimeUnixNano: start, endTimeUnixNano: start + 1_000, attributes: [blob]))
            }
            let resource = ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string(service))])
            let scope = ScopeDetail(name: "scope-\(service)", version: "1")
            resourceSpans.append(ResourceSpansDetail(resource: resource, scopeSpans: [ScopeSpansDetail(scope: scope, spans: spans)]))
        }
        let body = OTLPTraceEncoder.encodeRequest(resourceSpans: resourceSpans)
        let decoded = try OTLPTraceDecoder.decode(body, experimentID: experimentID)
        return FinishedTrace(traceID: traceID, spans: decoded.spans, reason: reason, isComplete: reason == .closed, experimentID: experimentID)
    }

    /// The request body as the server saw it, inflated when it was gzipped.
    static func inflate(_ request: RecordedRequest) throws -> [UInt8] {
        let encoding = BodyDecompressor.Encoding(header: request.header("content-encoding")) ?? .identity
        return try BodyDecompressor.decompress(request.body, encoding: encoding, limit: 256 << 20)
    }

    /// Service names of each `ResourceSpans` of a request body, in order.
    static func resourceServices(_ body: [UInt8]) throws -> [String?] {
        try OTLPTraceDecoder.decode(body, experimentID: nil).payload.resources.map(\.serviceName)
    }
}

/// Deterministic bytes (SplitMix64) that gzip cannot shrink.
struct TestBytes: RandomNumberGenerator {
    private var generator: SplitMix64
    /// Seeds are spread by another odd multiplier: seeds n and n+1 must not give the same stream
    /// shifted by one step (gzip would find the repeats).
    init(seed: UInt64) { generator = SplitMix64(seed: (seed &+ 1) &* 0xD1B5_4A32_D192_ED03) }

    mutating func next() -> UInt64 { generator.next() }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }
}
