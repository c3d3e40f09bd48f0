import Deflate
import Logging
import OTLPWire
import TraceEdge

/// One `ExportTraceServiceRequest` body, ready to send.
struct PlannedRequest: Sendable {
    /// Encoded, then compressed per the planner's `compression`.
    var body: [UInt8]
    var spanCount: Int
    /// Size before compression.
    var encodedBytes: Int
}

/// A single span whose request alone exceeds the hard request limit.
struct OversizedSpanError: Error, Sendable, CustomStringConvertible {
    var spanID: SpanID
    var bytes: Int
    var limit: Int
    var description: String {
        "span \(spanID.hex) alone makes a request of \(bytes) bytes, over the \(limit)-byte request limit"
    }
}

/// Cuts span lists into requests of at most `maxRequestBytes` (after compression).
///
/// Spans are written by `OTLPTraceEncoder.encodeRequest`, which copies each span's received bytes
/// and groups spans under their original resource and scope, in first-appearance order. Whatever
/// is too large is halved and planned again, first between traces, then inside one trace (its
/// span list split in two keeps each half grouped by resource and scope); only a single span can
/// stay over `maxRequestBytes`, and it is sent if it fits `hardLimit` (OTLP spec: clients must not
/// send requests over 64 MiB).
struct RequestPlanner: Sendable {
    /// OTLP spec, "OTLP/HTTP Request": the largest request a client may send.
    static let hardLimit = 64 << 20

    var compression: HTTPCompression
    var maxRequestBytes: Int
    /// What a single span's request may reach; `hardLimit` except in tests.
    var spanRequestLimit: Int

    init(compression: HTTPCompression, maxRequestBytes: Int, spanRequestLimit: Int = RequestPlanner.hardLimit) {
        self.compression = compression
        self.maxRequestBytes = maxRequestBytes
        self.spanRequestLimit = spanRequestLimit
    }

    /// Requests for `spanLists` (typically one list per trace), in order; spans inside one list
    /// keep their order, so a list that starts with its root puts the root's resource first.
    func plan(_ spanLists: [[SpanRecord]]) throws(OversizedSpanError) -> [PlannedRequest] {
        var requests: [PlannedRequest] = []
        let part = spanLists.filter { !$0.isEmpty }.map { $0[...] }
        if !part.isEmpty { try place(part, into: &requests) }
        return requests
    }

    /// Above this many span bytes per allowed request byte, a part is split before it is encoded:
    /// even well-compressing OTLP data does not shrink that much, so compressing it would be wasted.
    private var optimisticRatio: Int { compression == .gzip ? 16 : 1 }

    private func place(_ part: [ArraySlice<SpanRecord>], into requests: inout [PlannedRequest]) throws(OversizedSpanError) {
        let splittable = part.count > 1 || part[0].count > 1
        let spanBytes = part.reduce(0) { total, spans in spans.reduce(total) { $0 + $1.encodedSize } }
        let (threshold, overflow) = maxRequestBytes.multipliedReportingOverflow(by: optimisticRatio)
        if splittable && !overflow && spanBytes > threshold {
            let (first, second) = Self.halve(part)
            try place(first, into: &requests)
            try place(second, into: &requests)
            return
        }
        let spans = Array(part.joined())
        let encoded = OTLPTraceEncoder.encodeRequest(spans)
        let body = compression == .gzip ? Deflate.compress(encoded, format: .gzip) : encoded
        if body.count <= maxRequestBytes || (!splittable && body.count <= spanRequestLimit) {
            requests.append(PlannedRequest(body: body, spanCount: spans.count, encodedBytes: encoded.count))
            return
        }
        guard splittable else {
            throw OversizedSpanError(spanID: spans[0].spanID, bytes: body.count, limit: spanRequestLimit)
        }
        let (first, second) = Self.halve(part)
        try place(first, into: &requests)
        try place(second, into: &requests)
    }

    /// Two non-empty halves of similar byte size: between lists when there are several, else
    /// inside the one list.
    static func halve(_ part: [ArraySlice<SpanRecord>]) -> ([ArraySlice<SpanRecord>], [ArraySlice<SpanRecord>]) {
        if part.count > 1 {
            let sizes = part.map { $0.reduce(0) { $0 + $1.encodedSize } }
            let cut = splitIndex(sizes)
            return (Array(part[..<cut]), Array(part[cut...]))
        }
        let spans = part[0]
        let cut = spans.startIndex + splitIndex(spans.map(\.encodedSize))
        return ([spans[..<cut]], [spans[cut...]])
    }

    /// The index (1 ..< sizes.count) where the running total first reaches half of the sum.
    static func splitIndex(_ sizes: [Int]) -> Int {
        precondition(sizes.count > 1, "cannot split a single item")
        let half = sizes.reduce(0, +) / 2
        var running = 0
        for (index, size) in sizes.enumerated() {
            running += size
            if running >= half { return min(max(index + 1, 1), sizes.count - 1) }
        }
        return sizes.count - 1
    }
}

extension RequestPlanner {
    /// Sends `traces` in as few requests as the size limit allows, in order, through `send` (one
    /// HTTP request or one gRPC call each), and stops at the first request that is not delivered:
    /// a retry then sends the whole batch again (the OTLP spec accepts the duplicates a retry
    /// produces), a permanent failure dead-letters the whole batch. Partial successes add up.
    func deliver(
        _ traces: [FinishedTrace], destination: String, endpoint: String, logger: Logger,
        send: (PlannedRequest) async -> DeliveryOutcome
    ) async -> DeliveryOutcome {
        let requests: [PlannedRequest]
        do {
            requests = try plan(traces.map(\.spans))
        } catch {
            return .permanent(reason: "cannot be sent to \(endpoint): \(error)", response: "")
        }
        var rejectedSpans: Int64 = 0
        var messages: [String] = []
        for (index, request) in requests.enumerated() {
            let outcome = await send(request)
            logger.debug("OTLP export request", metadata: [
                "destination": "\(destination)", "request": "\(index + 1)/\(requests.count)",
                "spans": "\(request.spanCount)", "bytes": "\(request.body.count)", "outcome": "\(outcome)",
            ])
            switch outcome {
            case .delivered:
                continue
            case .partiallyRejected(let rejected, let message):
                rejectedSpans += rejected
                if !message.isEmpty { messages.append(message) }
            case .retryable, .permanent:
                return outcome
            }
        }
        if rejectedSpans > 0 || !messages.isEmpty {
            return .partiallyRejected(rejectedSpans: rejectedSpans, message: messages.joined(separator: "; "))
        }
        return .delivered
    }
}
