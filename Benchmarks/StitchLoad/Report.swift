import Foundation
import StitchLoadKit

/// What a run measured, printed for people and written as JSON for Benchmarks/run.sh.
struct Report {
    var mode: String
    /// http or grpc.
    var transport: String
    var target: String
    var shape: LoadShape
    var connections: Int
    var rate: Double?
    /// --gzip (for grpc the shape's bodies are uncompressed: the transport compresses).
    var gzip = false
    var uniqueSpans = 0
    var buildSeconds = 0.0
    var requestsPlanned = 0
    var duplicateRequestsPlanned = 0
    var lateSpansPlanned = 0
    var bodyBytes = 0
    var encodedBytes = 0
    /// With `--open-span-per-request`: what the never-closing spans need, held on their own.
    var openSpanRequestBytes = 0
    var sendSeconds = 0.0
    /// Every phase (main and late).
    var stats = LoadStats()
    /// The main phase only: the rates are over its duration.
    var mainStats = LoadStats()
    var committedSeconds: Double?
    var exactSeconds: Double?
    var steadyCommitTracesPerSecond: Double?
    var verification: Verification?

    init(mode: String, transport: String, target: String, shape: LoadShape, connections: Int, rate: Double?) {
        self.mode = mode
        self.transport = transport
        self.target = target
        self.shape = shape
        self.connections = connections
        self.rate = rate
    }

    private var spansPerTrace: Double { Double(uniqueSpans) / Double(max(1, shape.traces)) }
    var requestsPerSecond: Double { Double(mainStats.requestsOK) / max(sendSeconds, 1e-9) }
    var spansPerSecond: Double { Double(mainStats.spansOK) / max(sendSeconds, 1e-9) }
    var endToEndSpansPerSecond: Double? { committedSeconds.map { Double(uniqueSpans) / $0 } }
    var steadyCommitSpansPerSecond: Double? { steadyCommitTracesPerSecond.map { $0 * spansPerTrace } }

    func printSummary() {
        let format = transport + ", " + shape.format.rawValue + (gzip ? "+gzip" : "")
        let ok = transport == "grpc" ? "OK" : "2xx"
        print("stitch-load \(mode) → \(target) (\(format), \(connections) connections, rate \(rate.map { "\(Fmt.int($0)) spans/s" } ?? "unlimited"))")
        print("traffic:    \(Fmt.int(shape.traces)) traces × \(shape.spansPerTrace) spans over \(shape.servicesPerTrace) services = \(Fmt.int(uniqueSpans)) spans; "
            + "\(shape.attributeSize) B inputs/outputs; batches ≤ \(shape.batchSpans) spans; \(Fmt.int(shape.chunkTraces)) traces open at once")
        print("            \(Fmt.int(requestsPlanned)) requests (\(Fmt.int(duplicateRequestsPlanned)) duplicates, \(Fmt.int(lateSpansPlanned)) late spans), "
            + "\(Fmt.bytes(bodyBytes)) on the wire (\(Fmt.bytes(encodedBytes)) encoded), built in \(Fmt.fixed(buildSeconds, 2)) s")
        if shape.openSpanPerRequest {
            print("open spans: one per request, never closing; alone, their requests would be \(Fmt.int(openSpanRequestBytes)) B "
                + "(\(Fmt.int(openSpanRequestBytes / max(1, requestsPlanned - duplicateRequestsPlanned))) B each)")
        }
        guard sendSeconds > 0 else { return }
        print("accepted:   \(Fmt.int(mainStats.requestsOK)) requests, \(Fmt.int(mainStats.spansOK)) spans answered \(ok) in \(Fmt.fixed(sendSeconds, 2)) s "
            + "→ \(Fmt.int(requestsPerSecond)) requests/s, \(Fmt.int(spansPerSecond)) spans/s")
        if lateSpansPlanned > 0 {
            print("late:       \(Fmt.int(stats.spansOK - mainStats.spansOK)) spans answered \(ok) in \(Fmt.int(stats.requestsOK - mainStats.requestsOK)) requests after the main traffic")
        }
        let latency = stats.latencyMicros
        print("latency:    p50 \(Fmt.millis(latency.valueAtPercentile(50))) ms, p99 \(Fmt.millis(latency.valueAtPercentile(99))) ms, "
            + "max \(Fmt.millis(latency.max)) ms" + (rate != nil ? " (from when each request was due)" : ""))
        let non2xx = stats.statusCounts.sorted { $0.key < $1.key }.map { "\($0.key): \(Fmt.int($0.value))" }
        print((transport == "grpc" ? "not OK:     " : "non-2xx:    ") + "\(non2xx.isEmpty ? "none" : non2xx.joined(separator: ", "))"
            + (stats.retries > 0 ? " (\(Fmt.int(stats.retries)) retried)" : "")
            + (stats.requestsFailed > 0 ? "; \(Fmt.int(stats.requestsFailed)) requests (\(Fmt.int(stats.spansFailed)) spans) failed" : "")
            + (stats.reconnects > 0 ? "; \(stats.reconnects) reconnects" : ""))
        if let error = stats.firstError { print("first error: \(error)") }
        if let committedSeconds {
            var line = "committed:  every trace stored \(Fmt.fixed(committedSeconds, 2)) s after the first request → "
                + "\(Fmt.int(endToEndSpansPerSecond ?? 0)) spans/s end-to-end"
            if let steady = steadyCommitSpansPerSecond { line += " (steady commit rate \(Fmt.int(steady)) spans/s)" }
            print(line)
        } else if let verification {
            print("committed:  not every trace was stored in time (\(Fmt.int(verification.total - (verification.problems[.missing] ?? 0))) / \(Fmt.int(verification.total)))")
        }
        if let verification {
            let completeness = verification.completeness.sorted { $0.key < $1.key }.map { "\($0.key) \(Fmt.int($0.value))" }
            print("completeness: \(completeness.joined(separator: ", "))")
            for (problem, count) in verification.problems.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                print("problem:    \(problem.rawValue): \(Fmt.int(count)) traces")
            }
            for example in verification.examples { print("  e.g. \(example)") }
            print("traces exact: \(verification.exact) / \(verification.total)")
        }
    }

    func write(_ path: String?) throws {
        guard let path else { return }
        var object: [String: Any] = [
            "mode": mode, "protocol": transport, "traces": shape.traces, "spans_per_trace": shape.spansPerTrace, "services": shape.servicesPerTrace,
            "unique_spans": uniqueSpans, "requests_planned": requestsPlanned, "body_bytes": bodyBytes,
            "encoded_bytes": encodedBytes, "build_seconds": buildSeconds, "send_seconds": sendSeconds,
            "requests_ok": stats.requestsOK, "spans_ok": stats.spansOK, "requests_per_second": requestsPerSecond,
            "spans_per_second": spansPerSecond, "requests_failed": stats.requestsFailed, "retries": stats.retries,
            "non_2xx": Dictionary(uniqueKeysWithValues: stats.statusCounts.map { (String($0.key), $0.value) }),
            "latency_p50_ms": Double(stats.latencyMicros.valueAtPercentile(50)) / 1000,
            "latency_p99_ms": Double(stats.latencyMicros.valueAtPercentile(99)) / 1000,
            "latency_max_ms": Double(stats.latencyMicros.max) / 1000,
        ]
        if shape.openSpanPerRequest { object["open_span_request_bytes"] = openSpanRequestBytes }
        if let committedSeconds { object["committed_seconds"] = committedSeconds }
        if let value = endToEndSpansPerSecond { object["e2e_spans_per_second"] = value }
        if let value = steadyCommitSpansPerSecond { object["steady_commit_spans_per_second"] = value }
        if let exactSeconds { object["exact_seconds"] = exactSeconds }
        if let verification {
            object["traces_exact"] = verification.exact
            object["traces_total"] = verification.total
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }
}

/// Number formatting for the summary.
enum Fmt {
    static func int(_ value: Double) -> String { int(Int(value.rounded())) }

    static func int(_ value: Int) -> String {
        let digits = String(abs(value))
        var out = ""
        for (index, char) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(char)
        }
        return value < 0 ? "-" + out : out
    }

    static func fixed(_ value: Double, _ places: Int) -> String { String(format: "%.\(places)f", value) }

    static func millis(_ micros: UInt64) -> String { fixed(Double(micros) / 1000, 2) }

    static func bytes(_ count: Int) -> String {
        if count >= 1 << 20 { return fixed(Double(count) / Double(1 << 20), 1) + " MiB" }
        if count >= 1 << 10 { return fixed(Double(count) / Double(1 << 10), 1) + " KiB" }
        return "\(count) B"
    }
}
