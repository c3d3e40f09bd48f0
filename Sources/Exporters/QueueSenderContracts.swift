import TraceEdge

/// What one delivery attempt came to.
package enum DeliveryOutcome: Sendable, Equatable {
    case delivered
    /// Delivered, but the receiver rejected some spans (OTLP partial success): logged and counted, not retried.
    case partiallyRejected(rejectedSpans: Int64, message: String)
    /// Transient (429, 502, 503, 504, connection failure, timeout): retry, after `after` if the server said so.
    case retryable(reason: String, after: Duration?)
    /// Will never succeed as is (other 4xx, MLflow's unknown experiment): dead-letter with the response.
    case permanent(reason: String, response: String)
}

/// How many traces one `deliver` call takes at most; the sender asks its queue for no more.
package struct DeliveryBatchLimits: Sendable, Equatable {
    /// At least 1.
    package var maxTraces: Int
    /// Encoded span bytes (`FinishedTrace.encodedBytes`) per batch; a single larger trace is still
    /// handed over alone.
    package var maxBytes: Int

    package init(maxTraces: Int, maxBytes: Int) {
        self.maxTraces = max(1, maxTraces)
        self.maxBytes = max(1, maxBytes)
    }

    /// 512 traces or 4 MiB of spans: one OTLP request at the default request size.
    package static let standard = DeliveryBatchLimits(maxTraces: 512, maxBytes: 4 << 20)
}

/// The network client of a forwarding destination (OTLP/HTTP, MLflow): delivers one batch per call.
///
/// The names along the path, one per concept: the assembler releases `FinishedTrace`s into each
/// destination's in-memory *hand-off* (`HandoffQueue`); a *writer* (`SinkWriter`) drains it into a
/// *sink* (`TraceSink`: the store, or a forwarding destination's *disk queue*, `PersistentQueue`); a
/// *sender* (`QueueSender`) delivers what the disk queue holds through the destination's *exporter*
/// (this protocol), with retries and dead letters.
package protocol TraceExporter: Sendable {
    var name: String { get }
    /// The largest batch `deliver` should be given. Default `.standard`.
    var batchLimits: DeliveryBatchLimits { get }
    func deliver(_ traces: [FinishedTrace]) async -> DeliveryOutcome
    /// Releases connections.
    func shutdown() async
}

extension TraceExporter {
    package var batchLimits: DeliveryBatchLimits { .standard }
}

/// Where batches that can never be delivered are set aside (with the answer that refused them), so
/// that a permanent failure neither blocks the queue nor loses data. The persistent queue's
/// dead-letter store conforms.
package protocol DeadLetterSink: Sendable {
    /// Stores `traces`; throws when it could not (the sender then keeps the batch and tries again).
    func append(_ traces: [FinishedTrace], reason: String, response: String) async throws
}

/// The part of `PersistentQueue` a `QueueSender` reads from (so tests can use an in-memory queue).
package protocol DeliveryQueue: Sendable {
    /// Waits for records after those already handed out; nil once the queue is closed.
    func next(maxTraces: Int, maxBytes: Int) async -> [QueuedTrace]?
    /// Everything up to and including `sequence` is done.
    func acknowledge(through sequence: UInt64) async throws
    /// Sets the queue's gauges to the present (the oldest record's age grows while nothing moves);
    /// must not wait for the disk. The sender calls it every `gaugeInterval`.
    func refreshMetrics()
}

extension PersistentQueue: DeliveryQueue {}

extension DeadLetterStore: DeadLetterSink {
    /// `append(traces:reason:response:)`; a batch too large for the store is logged and counted
    /// there, and not kept.
    package func append(_ traces: [FinishedTrace], reason: String, response: String) async throws {
        try await append(traces: traces, reason: reason, response: response)
    }
}
