import Foundation
import OTLPWire
import StitchCore
import StitchTestSupport
import Testing
import TraceAssembler
import TraceEdge

/// No configuration value can crash Stitch: every key, fed extreme and odd values from the file, the
/// environment and a flag, is either refused with a problem naming that key, or accepted within its
/// range, and an accepted configuration drives the assembler through receive, tick and flush at the
/// far ends of its time limits.
@Suite("Configuration: extreme values from every source")
struct ConfigurationExtremesTests {
    static let extremes: [String] = [
        "0", "-1", "-0", "1", "-1s", "0s", "0ms", "1ns", "9999999999s", "99999999999999h", "9223372036854775807",
        "9223372036854775808", "18446744073709551616", "-9223372036854775808", "1e308", "-1e308", "1e-308", "nan", "NaN",
        "inf", "-inf", "infinity", "0x10", "1.5", "1_000", "1 KiB", "999999999999TiB", "8EiB", "1e30GiB", "-5MiB", "",
        " ", "∞", "٣", "🙂", String(repeating: "9", count: 400), "1h1m", "10000d", "24h", "168h", "1TiB", "10000000",
    ]

    enum Source: CaseIterable { case file, environment, flag }

    static func load(_ key: String, _ value: String, from source: Source) throws(ConfigurationError) -> StitchConfiguration {
        switch source {
        case .file:
            let quoted = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return try StitchConfiguration.load(file: ("extreme.yaml", "\(key): \"\(quoted)\"\n"), environment: [:], flags: [:])
        case .environment:
            return try StitchConfiguration.load(file: nil, environment: ["STITCH_" + key.uppercased(): value], flags: [:])
        case .flag:
            return try StitchConfiguration.load(file: nil, environment: [:], flags: [key: value])
        }
    }

    @Test("every key: refused with its key named, or accepted and usable", arguments: StitchConfiguration.options.map(\.key))
    func everyKey(key: String) throws {
        for value in Self.extremes {
            for source in Source.allCases {
                do {
                    let config = try Self.load(key, value, from: source)
                    #expect(config.validate().isEmpty, "\(key)=\(value) from \(source) accepted but invalid")
                    Self.exercise(config.assembler)
                } catch {
                    #expect(error.problems.contains { $0.keyPath == key },
                            "\(key)=\(value) from \(source): problems name other keys: \(error.problems)")
                    #expect(error.problems.allSatisfy { !$0.reason.isEmpty })
                }
            }
        }
    }

    @Test("the values of the issue are refused with a range in the message")
    func namedExamples() {
        for (key, value) in [("late_window", "9999999999s"), ("idle_timeout", "99999999999999h"), ("max_body_size", "0"),
                             ("max_traces", "-1"), ("max_buffered_bytes", "-5MiB"), ("retry_after", "0s"),
                             ("shutdown_timeout", "1e308s")] {
            do {
                _ = try Self.load(key, value, from: .flag)
                Issue.record("\(key)=\(value) was accepted")
            } catch {
                let problem = error.problems.first { $0.keyPath == key }
                #expect(problem?.reason.contains("out of range") == true, "\(key)=\(value): \(error.problems)")
            }
        }
    }

    @Test("the largest accepted limits together still run the assembler")
    func largestLimits() throws {
        let config = try StitchConfiguration.load(file: nil, environment: [:], flags: [
            "idle_timeout": "24h", "max_trace_age": "24h", "late_window": "168h", "max_traces": "10000000",
            "max_spans_per_trace": "10000000", "max_buffered_bytes": "1TiB", "max_body_size": "1GiB",
            "store_queue_max_bytes": "1TiB", "retry_after": "1h", "shutdown_timeout": "24h",
        ])
        Self.exercise(config.assembler)
        let smallest = try StitchConfiguration.load(file: nil, environment: [:], flags: [
            "idle_timeout": "1ms", "max_trace_age": "1ms", "late_window": "0s", "max_traces": "1",
            "max_spans_per_trace": "1", "max_buffered_bytes": "1KiB",
        ])
        Self.exercise(smallest.assembler)
    }

    @Test("destination values out of range are problems with their key paths")
    func destinationValues() {
        let file = """
        destinations:
          - name: a
            otlp: { endpoint: "http://127.0.0.1:4318/v1/traces", timeout: 99999999999999h, max_request_bytes: -1 }
            queue: { max_bytes: 1e30GiB }
            retry: { initial_interval: -1s, max_interval: 1e308s }
        """
        do {
            _ = try StitchConfiguration.load(file: ("d.yaml", file), environment: [:], flags: [:])
            Issue.record("accepted")
        } catch {
            let keys = Set(error.problems.map(\.keyPath))
            for key in ["destinations[0].otlp.timeout", "destinations[0].otlp.max_request_bytes", "destinations[0].queue.max_bytes",
                        "destinations[0].retry.initial_interval", "destinations[0].retry.max_interval"] {
                #expect(keys.contains(key), "\(key) not reported: \(error.problems)")
            }
        }
    }

    /// Spans in, a tick past every limit, a flush: what a running Stitch does with these limits.
    static func exercise(_ limits: AssemblerConfiguration) {
        var state = AssemblerState<ContinuousClock.Instant>(configuration: limits)
        let traces = SyntheticTraces(traceCount: 3, spansPerService: 2, services: ["a", "b"])
        let now = ContinuousClock.now
        var released = 0
        for request in traces.requests(traces: 0..<3) {
            guard let batch = try? OTLPTraceDecoder.decode(request.body, experimentID: nil) else {
                Issue.record("synthetic request did not decode")
                return
            }
            released += state.receive(batch.spans, now: now).1.count
        }
        released += state.tick(now: now + limits.idleTimeout + .milliseconds(1)).count
        released += state.tick(now: now + limits.maxTraceAge + limits.lateWindow + .seconds(1)).count
        released += state.flush(now: now + limits.maxTraceAge + limits.lateWindow + .seconds(2)).count
        #expect(released >= 3)
    }
}
