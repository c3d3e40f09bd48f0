import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import OTLPWire
import StitchLoadKit

@main
struct StitchLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stitch-load",
        abstract: "Generates distributed traces and sends them over OTLP/HTTP or OTLP/gRPC; optionally checks the store.",
        discussion: """
            accept: sends every request and reports requests/s, spans/s answered 2xx, latency and non-2xx.
            e2e:    the same, then waits until the store (--db) holds every trace and checks each one
                    (span count, parent links, root, stitch.services); exits 1 unless every trace is exact.
            Request bodies are built before the timed phase. The same --seed gives the same traffic.
            --protocol grpc sends the same messages as TraceService/Export calls (one HTTP/2 connection
            per --connections, one call in flight on each); --target is then the gRPC port (4317).
            --grpc-client raw (the default) writes the calls as HTTP/2 frames on SwiftNIO's HTTP/2, as
            cheaply as the HTTP/1.1 sender writes its requests; grpc-swift sends through grpc-swift 2.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case accept
        case e2e
    }

    enum Transport: String, ExpressibleByArgument, CaseIterable {
        case http
        case grpc
    }

    enum GRPCClient: String, ExpressibleByArgument, CaseIterable {
        case raw
        case grpcSwift = "grpc-swift"
    }

    @Argument(help: "accept or e2e.") var mode: Mode = .accept
    @Option(name: .customLong("protocol"), help: "http (OTLP/HTTP 1.1) or grpc (OTLP/gRPC).")
    var transport: Transport = .http
    @Option(help: "gRPC sender: raw (HTTP/2 frames on SwiftNIO) or grpc-swift (grpc-swift 2's client).")
    var grpcClient: GRPCClient = .raw
    @Option(help: "Base URL of the receiver: OTLP/HTTP requests go to <target>/v1/traces; gRPC calls to its host and port (default port 4317 for grpc). Repeatable (OTLP/HTTP): connection i sends to target i mod n, and a connection whose target stops answering moves to the next one, so the requests of a trace reach several instances.")
    var target: [String] = []
    @Option(help: "Services per trace.") var services = 3
    @Option(help: "Spans per trace.") var spansPerTrace = 20
    @Option(help: "Traces to send (default: rate × duration ÷ spans-per-trace when both are given, else 1000).")
    var traces: Int?
    @Option(help: "Bytes of each span's mlflow.spanInputs and mlflow.spanOutputs.") var attrSize = 256
    @Option(help: "Share of traces whose children are sent before their root.") var childrenFirstShare = 0.5
    @Option(help: "Share of requests sent twice (client retries).") var duplicateRate = 0.0
    @Option(help: "Share of traces that send one leaf span late (after --late-delay).") var lateRate = 0.0
    @Option(help: "Seconds to wait after the main traffic before sending late spans (must exceed Stitch's idle timeout).")
    var lateDelay = 3.0
    @Option(help: "Concurrent keep-alive connections.") var connections = 4
    @Option(help: "Target rate in spans/s (default: as fast as the server answers).") var rate: Double?
    @Option(help: "Stop sending after this many seconds (a bounded run; accept mode).") var duration: Double?
    @Option(help: "protobuf or json.") var format = "protobuf"
    @Flag(help: "gzip request bodies.") var gzip = false
    @Option(help: "Spans per request at most (the SDK's max export batch is 512).") var batchSpans = 512
    @Option(help: "Traces open at once: traces are sent in chunks of this many (0: one batch per service).")
    var openTraces = 0
    @Flag(help: "Each request also carries one small span of a trace that never closes (its parent is never sent).")
    var openSpanPerRequest = false
    @Option(help: "Seed of the generated traffic.") var seed: UInt64 = 1
    @Option(help: "x-mlflow-experiment-id header (and the experiment the e2e check expects).") var experimentId: String?
    @Option(help: "The store to check (e2e): a SQLite path or a postgresql:// URL.") var db: String?
    @Option(help: "e2e: seconds to wait for the store to hold every trace, exactly.") var timeout = 120.0
    @Option(help: "Event loop threads of the generator.") var threads = 1
    @Option(help: "Attempts per request for retryable answers (429/502/503/504).") var maxAttempts = 20
    @Option(help: "Also write the results as JSON to this file.") var jsonOut: String?
    @Flag(help: "Only build the requests and report their sizes and build time.") var dryRun = false

    func validate() throws {
        var problems = try shape().problems()
        if connections < 1 { problems.append("connections must be at least 1") }
        if let rate, rate <= 0 { problems.append("rate must be positive") }
        if mode == .e2e && db == nil && !dryRun { problems.append("e2e needs --db (the store to check)") }
        if BodyFormat(rawValue: format) == nil { problems.append("format must be protobuf or json, got \(format)") }
        if transport == .grpc && format != "protobuf" { problems.append("--protocol grpc sends protobuf only") }
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "; ")) }
    }

    func shape() throws -> LoadShape {
        var shape = LoadShape()
        shape.services = services
        shape.spansPerTrace = spansPerTrace
        if let traces {
            shape.traces = traces
        } else if let rate, let duration {
            shape.traces = max(1, Int(rate * duration) / max(1, spansPerTrace))
        }
        shape.attributeSize = attrSize
        shape.childrenFirstShare = childrenFirstShare
        shape.duplicateRate = duplicateRate
        shape.lateRate = lateRate
        shape.batchSpans = batchSpans
        shape.openTraces = openTraces
        shape.openSpanPerRequest = openSpanPerRequest
        shape.seed = seed
        shape.experimentID = experimentId
        shape.format = BodyFormat(rawValue: format) ?? .protobuf
        // gRPC compresses each message itself (grpc-encoding): its messages are planned uncompressed.
        shape.gzip = gzip && transport == .http
        return shape
    }

    var resolvedTarget: String { target.first ?? (transport == .grpc ? "http://127.0.0.1:4317" : "http://127.0.0.1:4318") }

    func run() async throws {
        let url = try TargetURL(resolvedTarget)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        do {
            switch transport {
            case .http:
                let head = RequestHead(url: url, shape: try shape())
                let targets = try (target.isEmpty ? [resolvedTarget] : target).map { try TargetURL($0) }
                try await run(HTTPLoad(targets: targets.map { ($0.host, $0.port) }, connections: connections, maxAttempts: maxAttempts,
                                       group: group)) {
                    head.buffer(for: $0)
                }
            case .grpc where grpcClient == .raw:
                let gzip = self.gzip
                try await run(RawGRPCLoad(host: url.host, port: url.port, connections: connections, maxAttempts: maxAttempts,
                                          gzip: gzip, experimentID: experimentId, group: group)) {
                    RawGRPCLoad.framed($0.body, gzip: gzip)
                }
            case .grpc:
                try await run(GRPCLoad(host: url.host, port: url.port, connections: connections, maxAttempts: maxAttempts, gzip: gzip,
                                       experimentID: experimentId, group: group)) { $0.body }
            }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    /// Builds the traffic into `load`'s payloads, sends it, checks the store (e2e) and reports.
    func run<Load: LoadSender>(_ load: Load, payload: @escaping (PlannedRequest) -> Load.Payload) async throws {
        let shape = try shape()
        let buildStart = ContinuousClock.now
        let plan = TrafficPlan(shape: shape)
        var main = PhaseBuilder(payload: payload)
        try plan.buildMain { main.add($0) }
        var late = PhaseBuilder(payload: payload)
        try plan.buildLate { late.add($0) }
        let buildSeconds = (ContinuousClock.now - buildStart).seconds

        var report = Report(mode: mode.rawValue, transport: transport.rawValue,
                            target: target.count > 1 ? target.joined(separator: ",") : resolvedTarget, shape: shape,
                            connections: connections, rate: rate)
        report.gzip = gzip
        report.uniqueSpans = plan.uniqueSpans
        report.buildSeconds = buildSeconds
        report.requestsPlanned = main.count + late.count
        report.duplicateRequestsPlanned = main.duplicateCount
        report.lateSpansPlanned = late.spanCount
        report.bodyBytes = main.bodyBytes + late.bodyBytes
        report.encodedBytes = main.encodedBytes + late.encodedBytes
        report.openSpanRequestBytes = main.openSpanRequestBytes
        if dryRun {
            report.printSummary()
            try report.write(jsonOut)
            return
        }

        let check = try mode == .e2e ? db.map(StoreCheck.init(path:)) : nil
        let baseline = try check?.committedTraces() ?? 0
        let clock = ContinuousClock()
        let start = clock.now

        let sampler = check.map { CommitSampler(check: $0, baseline: baseline, start: start) }
        let samplerTask = sampler.map { sampler in Task { await sampler.run() } }

        let (mainStats, mainSeconds) = await load.run(main.queue(rate: rate, duration: duration))
        var stats = mainStats
        report.sendSeconds = mainSeconds
        if !late.isEmpty {
            try await Task.sleep(for: .seconds(lateDelay))
            let (lateStats, _) = await load.run(late.queue(rate: nil, duration: nil))
            stats.merge(lateStats)
        }
        report.stats = stats
        report.mainStats = mainStats

        if let check {
            // Wait for every trace to be committed, then until every trace is exact (late fragments
            // and duplicates may still be merging), or the timeout. When requests were given up on,
            // some traces can never be whole: stop once the store has made no progress for 10 s.
            let deadline = start + .seconds(timeout)
            let wanted = Set(plan.traces.map { "tr-" + $0.traceID.hex })
            var committed = try check.committed(of: wanted)
            var lastProgress = clock.now
            while clock.now < deadline, committed < wanted.count {
                if stats.requestsFailed > 0, clock.now - lastProgress > .seconds(10) { break }
                try await Task.sleep(for: .milliseconds(50))
                let now = try check.committed(of: wanted)
                if now > committed { lastProgress = clock.now }
                committed = now
            }
            if committed == wanted.count { report.committedSeconds = (clock.now - start).seconds }
            var verification = try check.verify(plan, experimentID: experimentId)
            while !verification.allExact, committed == wanted.count, stats.requestsFailed == 0, clock.now < deadline {
                try await Task.sleep(for: .milliseconds(500))
                verification = try check.verify(plan, experimentID: experimentId)
            }
            report.exactSeconds = verification.allExact ? (clock.now - start).seconds : nil
            report.verification = verification
        }
        samplerTask?.cancel()
        if let sampler { report.steadyCommitTracesPerSecond = await sampler.steadyRate(total: plan.traces.count) }
        report.printSummary()
        try report.write(jsonOut)
        if let verification = report.verification, !verification.allExact { throw ExitCode(1) }
        if mode == .accept && stats.requestsFailed > 0 { throw ExitCode(1) }
    }
}

/// `http://host:port` as given by `--target`.
struct TargetURL {
    var host: String
    var port: Int
    var basePath: String

    init(_ text: String) throws {
        guard text.hasPrefix("http://") else { throw ValidationError("target must start with http://, got \(text)") }
        let rest = text.dropFirst("http://".count)
        let hostPort = rest.prefix { $0 != "/" }
        basePath = String(rest.dropFirst(hostPort.count))
        if basePath.hasSuffix("/") { basePath.removeLast() }
        let parts = hostPort.split(separator: ":")
        host = String(parts.first ?? "127.0.0.1")
        guard parts.count <= 2, let port = parts.count == 2 ? Int(parts[1]) : 80 else {
            throw ValidationError("bad host:port in \(text)")
        }
        self.port = port
    }

    var hostHeader: String { port == 80 ? host : "\(host):\(port)" }
}

/// The head written before every body.
struct RequestHead {
    var prefix: String
    var suffix: String

    init(url: TargetURL, shape: LoadShape) {
        prefix = "POST \(url.basePath)/v1/traces HTTP/1.1\r\nHost: \(url.hostHeader)\r\n"
            + "Content-Type: \(shape.format.contentType)\r\nUser-Agent: stitch-load\r\n"
        if shape.gzip { prefix += "Content-Encoding: gzip\r\n" }
        if let experiment = shape.experimentID { prefix += "x-mlflow-experiment-id: \(experiment)\r\n" }
        prefix += "Content-Length: "
        suffix = "\r\n\r\n"
    }

    /// The complete request (head and body) in one buffer.
    func buffer(for request: PlannedRequest) -> ByteBuffer {
        let length = String(request.body.count)
        var buffer = ByteBufferAllocator().buffer(capacity: prefix.utf8.count + length.utf8.count + 4 + request.body.count)
        buffer.writeString(prefix)
        buffer.writeString(length)
        buffer.writeString(suffix)
        buffer.writeBytes(request.body)
        return buffer
    }
}

/// Collects the requests of one phase as the sender's payloads (complete HTTP requests in buffers,
/// or gRPC messages).
struct PhaseBuilder<Payload: Sendable> {
    private let payload: (PlannedRequest) -> Payload
    private var payloads: [Payload] = []
    private var spans: [Int] = []
    private var duplicates: [Bool] = []
    private(set) var bodyBytes = 0
    private(set) var encodedBytes = 0
    /// Sum of `PlannedRequest.openSpanRequestBytes`, each request once.
    private(set) var openSpanRequestBytes = 0
    private(set) var spanCount = 0
    private(set) var duplicateCount = 0

    init(payload: @escaping (PlannedRequest) -> Payload) {
        self.payload = payload
    }

    mutating func add(_ request: PlannedRequest) {
        payloads.append(payload(request))
        spans.append(request.spans)
        duplicates.append(request.isDuplicate)
        bodyBytes += request.body.count
        encodedBytes += request.encodedBytes
        if !request.isDuplicate { openSpanRequestBytes += request.openSpanRequestBytes }
        spanCount += request.spans
        if request.isDuplicate { duplicateCount += 1 }
    }

    var count: Int { payloads.count }
    var isEmpty: Bool { payloads.isEmpty }

    func queue(rate: Double?, duration: Double?) -> RequestQueue<Payload> {
        RequestQueue(requests: payloads, spans: spans, duplicates: duplicates, rate: rate, duration: duration)
    }
}

/// Samples the committed trace count while the load runs, for the steady commit rate.
actor CommitSampler {
    private let check: StoreCheck
    private let baseline: Int
    private let start: ContinuousClock.Instant
    private var samples: [(seconds: Double, traces: Int)] = []

    init(check: StoreCheck, baseline: Int, start: ContinuousClock.Instant) {
        self.check = check
        self.baseline = baseline
        self.start = start
    }

    func run() async {
        while !Task.isCancelled {
            if let count = try? check.committedTraces() {
                samples.append(((ContinuousClock.now - start).seconds, count - baseline))
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Traces committed per second between 10 % and 90 % of `total` (nil with too few samples): the
    /// store's pace once traces flow, without the idle timeout that delays the first and last ones.
    func steadyRate(total: Int) -> Double? {
        guard let low = samples.first(where: { $0.traces >= total / 10 }),
              let high = samples.first(where: { $0.traces >= total * 9 / 10 }),
              high.seconds > low.seconds, high.traces > low.traces else { return nil }
        return Double(high.traces - low.traces) / (high.seconds - low.seconds)
    }
}

extension Duration {
    var seconds: Double {
        let (whole, attos) = components
        return Double(whole) + Double(attos) / 1e18
    }
}
