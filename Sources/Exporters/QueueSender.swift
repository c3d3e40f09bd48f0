import Logging
import Metrics
import TraceEdge

/// How a `QueueSender` retries and reports.
package struct QueueSenderConfiguration: Sendable, Equatable {
    package var retryPolicy: RetryPolicy
    /// A kind of failure (permanent, retrying, partial success) is logged at most once per this
    /// interval, with the counts since the last line. Default 30 s.
    package var logInterval: Duration
    /// The queue's gauges are refreshed this often (on the sender's clock) while the sender runs, so
    /// that `stitch_queue_oldest_age_seconds` keeps growing during an outage with no traffic. Default
    /// 1 s; nil: only when the queue changes.
    package var gaugeInterval: Duration?

    package init(retryPolicy: RetryPolicy = RetryPolicy(), logInterval: Duration = .seconds(30),
                gaugeInterval: Duration? = .seconds(1)) {
        self.retryPolicy = retryPolicy
        self.logInterval = logInterval
        self.gaugeInterval = gaugeInterval
    }
}

/// The delivery loop of one destination: reads batches from its queue, delivers them, and
/// acknowledges only what was delivered or set aside as a dead letter.
///
/// - `.delivered` / `.partiallyRejected`: acknowledged (a partial success is logged and counted;
///   the OTLP spec forbids retrying it).
/// - `.retryable`: the same batch is tried again after `retryPolicy.delay`, slept on the injected
///   clock, for as long as the failure stays transient: data is never dropped for being late.
/// - `.permanent`: the batch goes to the dead-letter sink with the answer, then is acknowledged.
///
/// Metrics, each with dimension `destination`: `stitch_destination_sent_traces_total`,
/// `stitch_destination_sent_spans_total`, `stitch_destination_retries_total`,
/// `stitch_destination_dead_lettered_traces_total`, `stitch_destination_partial_rejected_spans_total`,
/// and the timer `stitch_destination_send_seconds` (one delivery attempt).
package struct QueueSender<C: Clock>: Sendable where C.Duration == Duration {
    package let destination: any TraceExporter
    private let queue: any DeliveryQueue
    private let deadLetters: any DeadLetterSink
    private let configuration: QueueSenderConfiguration
    private let clock: C
    private let logger: Logger
    private let metrics: SenderMetrics

    package init(
        destination: any TraceExporter, queue: any DeliveryQueue, deadLetters: any DeadLetterSink,
        configuration: QueueSenderConfiguration = QueueSenderConfiguration(),
        clock: C, logger: Logger, metrics: any MetricsFactory
    ) {
        self.destination = destination
        self.queue = queue
        self.deadLetters = deadLetters
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        self.metrics = SenderMetrics(destination: destination.name, factory: metrics)
    }

    /// Runs until the task is cancelled or the queue is closed; whatever is not acknowledged then
    /// stays in the queue for the next start. Meanwhile refreshes the queue's gauges every
    /// `gaugeInterval` on the sender's clock.
    package func run() async {
        guard let interval = configuration.gaugeInterval else { return await deliverUntilStopped() }
        await withDiscardingTaskGroup { group in
            group.addTask { await refreshGauges(every: interval) }
            await deliverUntilStopped()
            group.cancelAll()
        }
    }

    private func refreshGauges(every interval: Duration) async {
        while true {
            do { try await clock.sleep(for: interval) } catch { return }
            queue.refreshMetrics()
        }
    }

    private func deliverUntilStopped() async {
        var logs = SenderLogState<C.Instant>(interval: configuration.logInterval)
        let limits = destination.batchLimits
        while !Task.isCancelled {
            guard let batch = await queue.next(maxTraces: limits.maxTraces, maxBytes: limits.maxBytes) else { return }
            guard let last = batch.last else { continue }
            guard await settle(batch.map(\.trace), logs: &logs) else { return }
            do {
                try await queue.acknowledge(through: last.sequence)
            } catch {
                // The batch is done; it will be sent again after a restart (at-least-once).
                logger.error("destination queue acknowledgement failed", metadata: [
                    "destination": "\(destination.name)", "sequence": "\(last.sequence)", "error": "\(error)",
                ])
            }
        }
    }

    /// Delivers or dead-letters `traces`; false when cancelled before either happened.
    private func settle(_ traces: [FinishedTrace], logs: inout SenderLogState<C.Instant>) async -> Bool {
        var attempt = 0
        while true {
            if Task.isCancelled { return false }
            let start = clock.now
            let outcome = await destination.deliver(traces)
            metrics.sendDuration.recordNanoseconds(Self.nanoseconds(start.duration(to: clock.now)))
            switch outcome {
            case .delivered:
                metrics.countSent(traces)
                return true
            case .partiallyRejected(let rejected, let message):
                metrics.countSent(traces)
                metrics.partialRejectedSpans.increment(by: max(rejected, 0))
                if let line = logs.partial.record(now: clock.now, count: Int(rejected)) {
                    logger.warning("destination rejected some spans (partial success); they are not retried", metadata: [
                        "destination": "\(destination.name)", "rejected_spans": "\(line.count)",
                        "since_last_log": "\(line.events) responses", "message": "\(message)",
                    ])
                }
                return true
            case .retryable(let reason, let after):
                if Task.isCancelled { return false }
                attempt += 1
                metrics.retries.increment()
                let delay = configuration.retryPolicy.delay(attempt: attempt, retryAfter: after)
                if let line = logs.retrying.record(now: clock.now, count: traces.count) {
                    logger.warning("destination unavailable; retrying", metadata: [
                        "destination": "\(destination.name)", "reason": "\(reason)", "attempt": "\(attempt)",
                        "retry_in": "\(delay)", "retries_since_last_log": "\(line.events)",
                    ])
                } else {
                    logger.debug("destination unavailable; retrying", metadata: [
                        "destination": "\(destination.name)", "reason": "\(reason)", "attempt": "\(attempt)",
                    ])
                }
                do { try await clock.sleep(for: delay) } catch { return false }
            case .permanent(let reason, let response):
                guard await deadLetter(traces, reason: reason, response: response) else { return false }
                metrics.deadLetteredTraces.increment(by: traces.count)
                if let line = logs.permanent.record(now: clock.now, count: traces.count) {
                    logger.error("destination refused traces permanently; set aside as dead letters", metadata: [
                        "destination": "\(destination.name)", "reason": "\(reason)",
                        "dead_lettered_traces": "\(line.count)", "batches": "\(line.events)",
                    ])
                }
                return true
            }
        }
    }

    /// Appends to the dead-letter sink, retrying with back-off while it fails (a full disk must
    /// not turn into lost traces); false when cancelled first.
    private func deadLetter(_ traces: [FinishedTrace], reason: String, response: String) async -> Bool {
        var attempt = 0
        while true {
            do {
                try await deadLetters.append(traces, reason: reason, response: response)
                return true
            } catch {
                attempt += 1
                logger.error("dead-letter store failed; keeping the batch queued", metadata: [
                    "destination": "\(destination.name)", "error": "\(error)", "attempt": "\(attempt)",
                ])
                do {
                    try await clock.sleep(for: configuration.retryPolicy.delay(attempt: attempt, retryAfter: nil))
                } catch {
                    return false
                }
            }
        }
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension QueueSender where C == ContinuousClock {
    /// A sender on the continuous clock.
    package init(
        destination: any TraceExporter, queue: any DeliveryQueue, deadLetters: any DeadLetterSink,
        configuration: QueueSenderConfiguration = QueueSenderConfiguration(),
        logger: Logger, metrics: any MetricsFactory
    ) {
        self.init(destination: destination, queue: queue, deadLetters: deadLetters, configuration: configuration,
                  clock: ContinuousClock(), logger: logger, metrics: metrics)
    }
}

/// Decides when a repeated event is worth a log line: the first at once, then at most one per
/// interval, carrying how many events (and items) happened since the previous line.
struct LogRateLimiter<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    struct Line: Equatable {
        /// Events since the previous line, this one included.
        var events: Int
        /// Items (traces, spans) over those events.
        var count: Int
    }

    let interval: Duration
    private var lastLogged: Instant?
    private var pendingEvents = 0
    private var pendingCount = 0

    init(interval: Duration) { self.interval = interval }

    /// Records one event of `count` items; returns the line to log now, if any.
    mutating func record(now: Instant, count: Int) -> Line? {
        pendingEvents += 1
        pendingCount += count
        if let lastLogged, lastLogged.duration(to: now) < interval { return nil }
        lastLogged = now
        defer { pendingEvents = 0; pendingCount = 0 }
        return Line(events: pendingEvents, count: pendingCount)
    }
}

/// One limiter per kind of log line of a sender.
private struct SenderLogState<Instant: InstantProtocol> where Instant.Duration == Duration {
    var permanent: LogRateLimiter<Instant>
    var retrying: LogRateLimiter<Instant>
    var partial: LogRateLimiter<Instant>

    init(interval: Duration) {
        permanent = LogRateLimiter(interval: interval)
        retrying = LogRateLimiter(interval: interval)
        partial = LogRateLimiter(interval: interval)
    }
}

/// The sender's instruments, created once per destination.
private struct SenderMetrics: Sendable {
    let sentTraces: Counter
    let sentSpans: Counter
    let retries: Counter
    let deadLetteredTraces: Counter
    let partialRejectedSpans: Counter
    let sendDuration: Metrics.Timer

    init(destination: String, factory: any MetricsFactory) {
        let dimensions = [("destination", destination)]
        sentTraces = Counter(label: "stitch_destination_sent_traces_total", dimensions: dimensions, factory: factory)
        sentSpans = Counter(label: "stitch_destination_sent_spans_total", dimensions: dimensions, factory: factory)
        retries = Counter(label: "stitch_destination_retries_total", dimensions: dimensions, factory: factory)
        deadLetteredTraces = Counter(label: "stitch_destination_dead_lettered_traces_total", dimensions: dimensions, factory: factory)
        partialRejectedSpans = Counter(label: "stitch_destination_partial_rejected_spans_total", dimensions: dimensions, factory: factory)
        sendDuration = Metrics.Timer(label: "stitch_destination_send_seconds", dimensions: dimensions, factory: factory)
    }

    func countSent(_ traces: [FinishedTrace]) {
        sentTraces.increment(by: traces.count)
        sentSpans.increment(by: traces.reduce(0) { $0 + $1.spans.count })
    }
}
