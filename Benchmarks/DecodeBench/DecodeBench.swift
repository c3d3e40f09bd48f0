import ArgumentParser
import Foundation
import OTLPModel
import OTLPWire
import StitchLoadKit

/// Spans/s per core of Stitch's wire reader and of swift-protobuf on the standard batch.
@main
struct DecodeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stitch-bench-decode",
        abstract: "Decode micro-benchmark: OTLPTraceDecoder.decode vs swift-protobuf, one thread.")

    @Option(help: "Spans in the standard batch.") var spans = 100
    @Option(help: "Bytes of each span's inputs and outputs.") var attrSize = 256
    @Option(help: "Seconds to run each decoder (after a short warm-up).") var seconds = 1.5
    @Option(help: "Also write the results as JSON to this file.") var jsonOut: String?
    @Option(help: "Run only this decoder (wire, detail or protobuf), e.g. under a profiler.") var only: String?

    struct Result {
        var name: String
        var iterations: Int
        var seconds: Double
    }

    func run() throws {
        let body = try StandardBatch.body(spans: spans, attributeSize: attrSize)
        let batch = try OTLPTraceDecoder.decode(body, experimentID: nil)
        guard batch.spans.count == spans, batch.rejectedSpans == 0 else {
            throw ValidationError("the standard batch decoded to \(batch.spans.count) spans, \(batch.rejectedSpans) rejected")
        }
        let reference = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: body)
        let referenceSpans = reference.resourceSpans.reduce(0) { $0 + $1.scopeSpans.reduce(0) { $0 + $1.spans.count } }
        guard referenceSpans == spans else { throw ValidationError("swift-protobuf read \(referenceSpans) spans") }

        if let only {
            let decoders: [String: () throws -> Int] = [
                "wire": { try OTLPTraceDecoder.decode(body, experimentID: nil).spans.count },
                "detail": { try OTLPTraceDecoder.decode(body, experimentID: nil).spans.reduce(0) { $0 + (try $1.decodeDetail().attributes.count) } },
                "protobuf": { try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: body).resourceSpans.count },
            ]
            guard let decoder = decoders[only] else { throw ValidationError("--only takes wire, detail or protobuf") }
            let result = try measure(only, decoder)
            print("\(only): \(Int(Double(result.iterations * spans) / result.seconds)) spans/s")
            return
        }
        print("standard batch: \(spans) spans × \(SpanContent.attributesPerSpan) attributes, \(attrSize) B inputs/outputs, \(body.count) bytes")
        var results: [Result] = []
        results.append(try measure("stitch wire reader (OTLPTraceDecoder.decode)") {
            let decoded = try OTLPTraceDecoder.decode(body, experimentID: nil)
            return decoded.spans.count
        })
        results.append(try measure("stitch full span decode (decode + decodeDetail, the store's path)") {
            let decoded = try OTLPTraceDecoder.decode(body, experimentID: nil)
            var attributes = 0
            for span in decoded.spans { attributes += try span.decodeDetail().attributes.count }
            return attributes
        })
        results.append(try measure("swift-protobuf (ExportTraceServiceRequest(serializedBytes:))") {
            let message = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: body)
            return message.resourceSpans.count
        })

        let wire = results[0]
        let wireRate = Double(wire.iterations * spans) / wire.seconds
        print("| decoder | spans/s per core | MB/s | ns/span | vs swift-protobuf |")
        print("|---|---:|---:|---:|---:|")
        let protobufRate = Double(results[2].iterations * spans) / results[2].seconds
        var json: [String: Any] = ["batch_bytes": body.count, "spans": spans]
        for (index, result) in results.enumerated() {
            let rate = Double(result.iterations * spans) / result.seconds
            let bytesPerSecond = Double(result.iterations * body.count) / result.seconds
            print("| \(result.name) | \(Int(rate)) | \(Int(bytesPerSecond / 1e6)) | \(String(format: "%.0f", 1e9 / rate)) | \(String(format: "%.1f×", rate / protobufRate)) |")
            json[["wire", "detail", "swift_protobuf"][index] + "_spans_per_second"] = rate
            json[["wire", "detail", "swift_protobuf"][index] + "_bytes_per_second"] = bytesPerSecond
        }
        print("wire reader / swift-protobuf: \(String(format: "%.1f", wireRate / protobufRate))×")
        if let jsonOut {
            try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]).write(to: URL(fileURLWithPath: jsonOut))
        }
    }

    /// Runs `body` repeatedly for `seconds` after a warm-up; the sink keeps the work from being optimized out.
    func measure(_ name: String, _ body: () throws -> Int) rethrows -> Result {
        var sink = 0
        let warmUp = ContinuousClock.now
        while ContinuousClock.now - warmUp < .milliseconds(200) { sink &+= try body() }
        var iterations = 0
        let start = ContinuousClock.now
        var elapsed = Duration.zero
        while elapsed < .seconds(seconds) {
            for _ in 0..<16 { sink &+= try body() }
            iterations += 16
            elapsed = ContinuousClock.now - start
        }
        if sink == 42 { print("", terminator: "") }
        let (whole, attos) = elapsed.components
        return Result(name: name, iterations: iterations, seconds: Double(whole) + Double(attos) / 1e18)
    }
}
