import OTLPWire
import StitchTestSupport

/// The content of generated spans: what an MLflow-instrumented application exports (mlflow.md, "What
/// MLflow's OTLP exporter sends"): every `mlflow.*` value a JSON-encoded string, ten string attributes
/// per span, inputs and outputs of `attributeSize` bytes each.
package struct SpanContent: Sendable {
    package let attributeSize: Int
    private let text: [UInt8]

    package static let attributesPerSpan = 10
    static let spanTypes = ["\"CHAIN\"", "\"LLM\"", "\"TOOL\"", "\"RETRIEVER\"", "\"AGENT\""]

    package init(attributeSize: Int) {
        self.attributeSize = attributeSize
        // A pool of lowercase words to cut values from: JSON-safe, compressible like real text.
        let words = ["the", "agent", "calls", "a", "tool", "with", "query", "about", "weather", "in", "paris",
                     "returns", "three", "documents", "model", "answer", "user", "asks", "summary", "of", "report"]
        var pool: [UInt8] = []
        var random = SplitMix64(seed: 0x5EED)
        while pool.count < max(65_536, 2 * attributeSize + 64) {
            pool.append(contentsOf: words[Int(random.next() % UInt64(words.count))].utf8)
            pool.append(UInt8(ascii: " "))
        }
        text = pool
    }

    /// `length` bytes of text starting at a position chosen by `key`.
    private func words(_ length: Int, key: UInt64) -> String {
        let start = Int(key % UInt64(text.count - length))
        return String(decoding: text[start..<(start + length)], as: UTF8.self)
    }

    /// A JSON document of exactly `attributeSize` bytes, as MLflow records inputs and outputs.
    func payload(role: String, key: UInt64) -> String {
        let prefix = "{\"messages\": [{\"role\": \"\(role)\", \"content\": \""
        let suffix = "\"}]}"
        let fixed = prefix.utf8.count + suffix.utf8.count
        if attributeSize >= fixed + 8 {
            return prefix + words(attributeSize - fixed, key: key) + suffix
        }
        return "\"" + words(attributeSize - 2, key: key) + "\""
    }

    /// The resource of service `service`.
    package func resource(service: Int) -> ResourceDetail {
        ResourceDetail(attributes: [
            KeyValue(key: "service.name", value: .string(ServiceNames.name(service))),
            KeyValue(key: "service.instance.id", value: .string("\(ServiceNames.name(service))-0")),
            KeyValue(key: "telemetry.sdk.language", value: .string("python")),
            KeyValue(key: "telemetry.sdk.name", value: .string("opentelemetry")),
            KeyValue(key: "telemetry.sdk.version", value: .string("1.45.2")),
        ])
    }

    package var scope: ScopeDetail { ScopeDetail(name: "mlflow.tracing.provider", version: "3.17.2") }

    /// Span `span` of `trace`.
    package func span(_ span: Int, of trace: PlannedTrace) -> SpanDetail {
        let service = trace.service(ofSpan: span)
        let isEntry = trace.serviceStarts[service] == span
        let key = trace.traceID.low ^ trace.spanIDs[span].raw
        let count = UInt64(trace.spanCount)
        let position = UInt64(span)
        let start = trace.startTimeUnixNano + position * 1_000_000
        let end = trace.startTimeUnixNano + count * 1_000_000 + (count - position) * 100_000
        let requestID = "\"tr-" + trace.traceID.hex + "\""
        let attributes = [
            KeyValue(key: "mlflow.traceRequestId", value: .string(requestID)),
            KeyValue(key: "mlflow.spanType", value: .string(Self.spanTypes[Int(key % UInt64(Self.spanTypes.count))])),
            KeyValue(key: "mlflow.spanInputs", value: .string(payload(role: "user", key: key))),
            KeyValue(key: "mlflow.spanOutputs", value: .string(payload(role: "assistant", key: key >> 17))),
            KeyValue(key: "mlflow.spanFunctionName", value: .string("\"step_\(span)\"")),
            KeyValue(key: "session.id", value: .string("session-\(trace.traceID.low % 997)")),
            KeyValue(key: "gen_ai.system", value: .string("openai")),
            KeyValue(key: "gen_ai.request.model", value: .string("gpt-4o-mini")),
            KeyValue(key: "server.address", value: .string("\(ServiceNames.name(service)).internal")),
            KeyValue(key: "http.request.method", value: .string("POST")),
        ]
        return SpanDetail(
            traceID: trace.traceID, spanID: trace.spanIDs[span], parentSpanID: trace.parents[span],
            name: span == 0 ? "agent.run" : isEntry ? "\(ServiceNames.name(service)).handle" : "step_\(span)",
            kind: isEntry && span != 0 ? 2 : 1, startTimeUnixNano: start, endTimeUnixNano: end,
            attributes: attributes, statusCode: 1, flags: trace.flags(ofSpan: span))
    }
}
