import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// The requests of one phase, ready to send, built before the timed phase: for HTTP each is the
/// complete HTTP/1.1 request (head and body) in one buffer, so that sending costs one write; for
/// gRPC each is the `ExportTraceServiceRequest` message.
final class RequestQueue<Payload: Sendable>: Sendable {
    let requests: [Payload]
    let spans: [Int]
    let duplicates: [Bool]
    /// `intended[i]`: nanoseconds after the phase start at which request `i` is due (rate mode).
    private let intended: [Int64]?
    private let next = Atomic<Int>(0)
    private let startNanos = Atomic<Int64>(0)
    private let stopAfterNanos: Int64?

    /// - Parameters:
    ///   - rate: spans per second to aim at; nil sends as fast as the server answers.
    ///   - duration: stop handing out requests after this long (a bounded run).
    init(requests: [Payload], spans: [Int], duplicates: [Bool], rate: Double?, duration: Double?) {
        self.requests = requests
        self.spans = spans
        self.duplicates = duplicates
        if let rate {
            var due: [Int64] = []
            due.reserveCapacity(spans.count)
            var sent = 0
            for count in spans {
                due.append(Int64(Double(sent) / rate * 1e9))
                sent += count
            }
            intended = due
        } else {
            intended = nil
        }
        stopAfterNanos = duration.map { Int64($0 * 1e9) }
    }

    var isRateLimited: Bool { intended != nil }

    func start(at time: NIODeadline) {
        startNanos.store(Int64(time.uptimeNanoseconds), ordering: .releasing)
    }

    /// The next request to send and when it is due, or nil when the phase is over.
    func claim() -> (index: Int, due: NIODeadline)? {
        let start = startNanos.load(ordering: .acquiring)
        if let stopAfterNanos, Int64(NIODeadline.now().uptimeNanoseconds) - start > stopAfterNanos { return nil }
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        guard index < requests.count else { return nil }
        let offset = intended?[index] ?? 0
        return (index, NIODeadline.uptimeNanoseconds(UInt64(start + offset)))
    }
}

/// What one connection measured.
struct LoadStats: Sendable {
    var latencyMicros = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    var requestsOK = 0
    var spansOK = 0
    var duplicateRequestsOK = 0
    var bytesSent = 0
    /// Answers that were not 2xx, by status (each retry counts).
    var statusCounts: [Int: Int] = [:]
    /// Requests given up on (non-retryable answer, or retries exhausted, or the connection failed).
    var requestsFailed = 0
    var spansFailed = 0
    var retries = 0
    var reconnects = 0
    var connectionErrors = 0
    var firstError: String?

    mutating func merge(_ other: LoadStats) {
        latencyMicros.add(other.latencyMicros)
        requestsOK += other.requestsOK
        spansOK += other.spansOK
        duplicateRequestsOK += other.duplicateRequestsOK
        bytesSent += other.bytesSent
        for (status, count) in other.statusCounts { statusCounts[status, default: 0] += count }
        requestsFailed += other.requestsFailed
        spansFailed += other.spansFailed
        retries += other.retries
        reconnects += other.reconnects
        connectionErrors += other.connectionErrors
        if firstError == nil { firstError = other.firstError }
    }
}

/// How a connection ended.
struct ConnectionOutcome: Sendable {
    var stats: LoadStats
    /// The request in flight when the connection closed, to send again on a new connection.
    var unfinished: InFlight?
}

struct InFlight: Sendable {
    var index: Int
    var due: NIODeadline
    var attempts: Int
}

/// Drives one keep-alive connection: writes a request, waits for its answer, writes the next one.
///
/// Retryable answers (429, 502, 503, 504: otlp.md) are sent again after `Retry-After` (capped), as an
/// OTLP exporter does; latency is recorded for the final answer, from the moment the request was due
/// (in rate mode, so that a slow server cannot hide queueing: no coordinated omission) or written.
final class LoadConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let retryableStatuses: Set<Int> = [429, 502, 503, 504]

    private let queue: RequestQueue<ByteBuffer>
    private let outcome: EventLoopPromise<ConnectionOutcome>
    private let maxAttempts: Int
    private var parser = ResponseParser()
    private var stats = LoadStats()
    private var current: InFlight?
    private var writtenAt = NIODeadline.now()
    private var carried: InFlight?
    private var finished = false

    init(queue: RequestQueue<ByteBuffer>, outcome: EventLoopPromise<ConnectionOutcome>, carried: InFlight?, maxAttempts: Int) {
        self.queue = queue
        self.outcome = outcome
        self.carried = carried
        self.maxAttempts = maxAttempts
    }

    func channelActive(context: ChannelHandlerContext) {
        if let carried {
            self.carried = nil
            write(carried, context: context)
        } else {
            sendNext(context: context)
        }
    }

    private func sendNext(context: ChannelHandlerContext) {
        guard let claimed = queue.claim() else {
            finish(context: context, unfinished: nil)
            return
        }
        let request = InFlight(index: claimed.index, due: claimed.due, attempts: 1)
        if queue.isRateLimited, claimed.due > .now() {
            current = request
            context.eventLoop.assumeIsolated().scheduleTask(deadline: claimed.due) { [self] in
                write(request, context: context)
            }
        } else {
            write(request, context: context)
        }
    }

    private func write(_ request: InFlight, context: ChannelHandlerContext) {
        guard !finished else { return }
        current = request
        writtenAt = .now()
        let buffer = queue.requests[request.index]
        stats.bytesSent += buffer.readableBytes
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        parser.append(&bytes)
        do {
            while let response = try parser.next() {
                handle(response, context: context)
                if finished { return }
            }
        } catch {
            fail("bad response: \(error)", context: context)
        }
    }

    private func handle(_ response: ResponseSummary, context: ChannelHandlerContext) {
        guard let request = current else {
            fail("response without a request (status \(response.status))", context: context)
            return
        }
        current = nil
        let spans = queue.spans[request.index]
        if (200..<300).contains(response.status) {
            let start = queue.isRateLimited ? request.due : writtenAt
            let micros = (NIODeadline.now() - start).nanoseconds / 1000
            _ = stats.latencyMicros.record(UInt64(max(1, micros)))
            stats.requestsOK += 1
            stats.spansOK += spans
            if queue.duplicates[request.index] { stats.duplicateRequestsOK += 1 }
        } else {
            stats.statusCounts[response.status, default: 0] += 1
            if Self.retryableStatuses.contains(response.status), request.attempts < maxAttempts {
                stats.retries += 1
                var retry = request
                retry.attempts += 1
                // Exponential back-off from 50 ms, or the server's Retry-After, at most 2 s.
                let delay = retryDelay(attempt: request.attempts, suggested: response.retryAfterSeconds)
                current = retry
                if response.closes {
                    finish(context: context, unfinished: retry)
                    return
                }
                context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) { [self] in
                    write(retry, context: context)
                }
                return
            }
            stats.requestsFailed += 1
            stats.spansFailed += spans
            if stats.firstError == nil { stats.firstError = "status \(response.status) for request \(request.index)" }
        }
        if response.closes {
            finish(context: context, unfinished: nil)
        } else {
            sendNext(context: context)
        }
    }

    private func fail(_ message: String, context: ChannelHandlerContext) {
        stats.connectionErrors += 1
        if stats.firstError == nil { stats.firstError = message }
        finish(context: context, unfinished: current)
    }

    private func finish(context: ChannelHandlerContext, unfinished: InFlight?) {
        guard !finished else { return }
        finished = true
        outcome.succeed(ConnectionOutcome(stats: stats, unfinished: unfinished))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            stats.connectionErrors += 1
            if stats.firstError == nil { stats.firstError = "connection closed by the server" }
            outcome.succeed(ConnectionOutcome(stats: stats, unfinished: current))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail("connection error: \(error)", context: context)
    }
}

/// Sends the requests of a phase over `connections` connections and merges what they measured.
protocol LoadSender: Sendable {
    associatedtype Payload: Sendable
    var connections: Int { get }
    /// Sends requests claimed from `queue`, one at a time, until the queue is done.
    func runConnection(_ queue: RequestQueue<Payload>) async -> LoadStats
}

extension LoadSender {
    func run(_ queue: RequestQueue<Payload>) async -> (stats: LoadStats, seconds: Double) {
        let start = NIODeadline.now()
        queue.start(at: start)
        var total = LoadStats()
        await withTaskGroup(of: LoadStats.self) { tasks in
            for _ in 0..<connections {
                tasks.addTask { await runConnection(queue) }
            }
            for await stats in tasks { total.merge(stats) }
        }
        let seconds = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        return (total, seconds)
    }
}

/// Seconds before sending again after the `attempt`-th retryable answer: what the server suggested
/// (`Retry-After`, `RetryInfo`), else exponential back-off from 50 ms; at most 2 s.
func retryDelay(attempt: Int, suggested: Double?) -> Double {
    min(suggested ?? 0.05 * Double(1 << min(attempt - 1, 5)), 2)
}

/// Sends a queue of requests over `connections` keep-alive connections and merges what they measured.
struct HTTPLoad: LoadSender {
    /// Connection slot i starts on target i mod n.
    var targets: [(host: String, port: Int)]
    var connections: Int
    var maxAttempts: Int
    var group: MultiThreadedEventLoopGroup
    private let slots = SlotCounter()

    init(targets: [(host: String, port: Int)], connections: Int, maxAttempts: Int, group: MultiThreadedEventLoopGroup) {
        self.targets = targets
        self.connections = connections
        self.maxAttempts = maxAttempts
        self.group = group
    }

    /// Hands each connection slot its index.
    final class SlotCounter: Sendable {
        private let next = Atomic<Int>(0)
        func take() -> Int { next.wrappingAdd(1, ordering: .relaxed).oldValue }
    }

    /// One connection slot: reconnects (at most 100 times) when the server closes the connection;
    /// with several targets, to the next target each time its own fails.
    func runConnection(_ queue: RequestQueue<ByteBuffer>) async -> LoadStats {
        var stats = LoadStats()
        var carried: InFlight?
        var failures = 0
        var targetIndex = slots.take() % targets.count
        while true {
            let (host, port) = targets[targetIndex]
            let loop = group.next()
            let outcome = loop.makePromise(of: ConnectionOutcome.self)
            let attempts = maxAttempts
            let bootstrap = ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .channelInitializer { [carried] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            LoadConnectionHandler(queue: queue, outcome: outcome, carried: carried, maxAttempts: attempts))
                    }
                }
            do {
                _ = try await bootstrap.connect(host: host, port: port).get()
            } catch {
                outcome.fail(error)
                stats.connectionErrors += 1
                if stats.firstError == nil { stats.firstError = "cannot connect to \(host):\(port): \(error)" }
                failures += 1
                targetIndex = (targetIndex + 1) % targets.count
                if failures > 100 { return stats }
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            guard let result = try? await outcome.futureResult.get() else { return stats }
            stats.merge(result.stats)
            guard let unfinished = result.unfinished else { return stats }
            failures += 1
            targetIndex = (targetIndex + 1) % targets.count
            stats.reconnects += 1
            if failures > 100 || unfinished.attempts > maxAttempts {
                stats.requestsFailed += 1
                stats.spansFailed += queue.spans[unfinished.index]
                return stats
            }
            var next = unfinished
            next.attempts += 1
            carried = next
        }
    }
}
