#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import OTLPWire

/// A span in the shape MLflow stores it: what `translate_span_when_storing(Span.from_otel_proto(…))`
/// produces on MLflow's `/v1/traces` path (mlflow/server/otel_api.py → mlflow/entities/span.py →
/// mlflow/tracing/otel/translation/__init__.py), and its JSON for the `spans.content` column.
package struct MLflowSpan: Sendable, Equatable {
    package var traceID: TraceID
    package var spanID: SpanID
    /// `SpanID.none` for a root span.
    package var parentSpanID: SpanID
    package var name: String
    /// OTLP `Span.kind` raw value.
    package var kind: Int32
    package var startTimeUnixNano: UInt64
    package var endTimeUnixNano: UInt64
    /// Normalized to MLflow's three codes (0 unset, 1 ok, 2 error).
    package var statusCode: Int32
    /// Kept only for ERROR, as OpenTelemetry's `Status` does.
    package var statusMessage: String
    /// Insertion-ordered; every value is a `.string` holding the stored (JSON) text.
    package var attributes: PyObject
    /// `{"name", "time_unix_nano", "attributes"}` objects.
    package var events: [PyJSON]
    /// `{"trace_id", "span_id", "attributes"}` objects.
    package var links: [PyJSON]

    package var isRoot: Bool { parentSpanID.isZero }

    package func attribute(_ key: String) -> String? { attributes[key]?.stringValue }

    /// `"tr-" + 32 lowercase hex`: MLflow's request id for an OTLP trace id.
    package static func requestID(for traceID: TraceID) -> String { "tr-" + traceID.hex }

    /// Service names MLflow copies onto root spans as a `service.name` attribute
    /// (`_KNOWN_SERVICE_NAMES` in mlflow/server/otel_api.py).
    package static let knownServiceNames: Set<String> = ["claude-code", "codex_cli_rs", "codex_vscode", "gemini-cli", "qwen-code"]

    // MARK: Conversion

    /// Converts a decoded OTLP span the way MLflow's OTLP endpoint does before storing it.
    package init(detail: SpanDetail, resource: ResourceDetail?) {
        self.init(detail: detail, resourceServiceName: resource.flatMap(Self.serviceNameForRoot))
    }

    /// `str(service.name)` of a resource, as otel_api compares it with the known clients.
    package static func serviceNameForRoot(_ resource: ResourceDetail) -> String? {
        resource.attributes.first(where: { $0.key == "service.name" }).flatMap { pythonStr($0.value) }
    }

    /// - Parameters:
    ///   - resourceServiceName: `serviceNameForRoot` of the span's resource.
    ///   - storedRequestID: the stored `mlflow.traceRequestId` value (`json.dumps` of the request id),
    ///     when the caller has it already (the same for every span of a trace).
    package init(detail: SpanDetail, resourceServiceName: String?, storedRequestID: String? = nil) {
        traceID = detail.traceID
        spanID = detail.spanID
        parentSpanID = detail.parentSpanID
        name = detail.name
        kind = detail.kind
        startTimeUnixNano = detail.startTimeUnixNano
        endTimeUnixNano = detail.endTimeUnixNano
        statusCode = Self.normalizedStatusCode(detail.statusCode)
        statusMessage = statusCode == 2 ? detail.statusMessage : ""

        // from_otel_proto: every value dumped as JSON (a repeated key keeps its first position,
        // last value), then mlflow.traceRequestId set from the OTLP trace id;
        // translate_span_when_storing then sanitizes each value (both in `storedValue`).
        var stored = PyObject(capacity: detail.attributes.count + 2)
        for attribute in detail.attributes {
            stored[attribute.key] = .string(MLflowAttributes.storedValue(attribute.value))
        }
        stored[MLflowKeys.requestID] = .string(storedRequestID ?? PyJSONWriter.dumpString(Self.requestID(for: detail.traceID)))
        // otel_api.export_traces: a root span from a known client gets the resource's service name.
        if detail.parentSpanID.isZero, let serviceName = resourceServiceName, Self.knownServiceNames.contains(serviceName) {
            stored["service.name"] = .string(MLflowAttributes.storedValue(.string(serviceName)))
        }
        // Then the semantic-convention translations.
        GenAITranslation.apply(to: &stored)
        attributes = stored

        events = detail.events.map { event in
            var attributes = PyObject()
            for attribute in event.attributes {
                attributes[attribute.key] = MLflowAttributes.pythonValue(attribute.value)
            }
            return .object(PyObject([
                ("name", .string(event.name)),
                ("time_unix_nano", .int(Int64(clamping: event.timeUnixNano))),
                ("attributes", .object(attributes)),
            ]))
        }
        links = detail.links.map { link in
            // Link.from_otel_proto: top-level bytes values become base64; nested ones go through
            // TraceJSONEncoder like any other value.
            var attributes = PyObject()
            for attribute in link.attributes {
                if case .bytes(let raw) = attribute.value {
                    attributes[attribute.key] = .string(Data(raw).base64EncodedString())
                } else {
                    attributes[attribute.key] = MLflowAttributes.pythonValue(attribute.value)
                }
            }
            return .object(PyObject([
                ("trace_id", .string("tr-" + Self.intHex(link.traceID, width: 32))),
                ("span_id", .string(Self.intHex(link.spanID, width: 16))),
                ("attributes", attributes.isEmpty ? .null : .object(attributes)),
            ]))
        }
    }

    /// Python's `str(value)` for the scalar kinds a service name can take.
    private static func pythonStr(_ value: AnyValue) -> String? {
        switch value {
        case .string(let text): return text
        case .empty: return nil
        case .bytes(let raw): return MLflowAttributes.pythonBytesRepr(raw)
        case .bool(let flag): return flag ? "True" : "False"
        case .int(let number): return String(number)
        case .double(let number): return PyJSONWriter.pythonFloatRepr(number)
        case .array, .kvlist: return PyJSONWriter.dump(MLflowAttributes.pythonValue(value), ensureASCII: false)
        }
    }

    /// `f"{int.from_bytes(raw, 'big'):0{width}x}"`: hex of the big-endian integer, zero-padded.
    package static func intHex(_ raw: [UInt8], width: Int) -> String {
        var hex = Substring(HexCoding.hex(raw))
        while hex.count > 1, hex.first == "0" { hex.removeFirst() }
        if hex.isEmpty { hex = "0" }
        return hex.count >= width ? String(hex) : String(repeating: "0", count: width - hex.count) + hex
    }

    // MARK: Stored form

    /// `SpanStatusCode` as MLflow stores it in `spans.status`.
    package var statusName: String { Self.statusName(statusCode) }

    /// An OTLP status code as MLflow keeps it: 1 ok, 2 error, anything else 0 (unset).
    package static func normalizedStatusCode(_ code: Int32) -> Int32 { code == 1 || code == 2 ? code : 0 }

    /// The name of a normalized status code (0 unset, 1 ok, 2 error).
    package static func statusName(_ code: Int32) -> String { statusLiteral(code).description }

    /// The OTLP enum name MLflow writes in the span JSON. MLflow reads spans through the
    /// OpenTelemetry SDK, whose `SpanKind` has no UNSPECIFIED; the OTLP spec lets a receiver treat
    /// UNSPECIFIED as INTERNAL, so unspecified and unknown kinds are written as INTERNAL.
    private static func kindLiteral(_ kind: Int32) -> StaticString {
        switch kind {
        case 2: return "SPAN_KIND_SERVER"
        case 3: return "SPAN_KIND_CLIENT"
        case 4: return "SPAN_KIND_PRODUCER"
        case 5: return "SPAN_KIND_CONSUMER"
        default: return "SPAN_KIND_INTERNAL"
        }
    }

    private static func statusLiteral(_ code: Int32) -> StaticString {
        switch code {
        case 1: return "OK"
        case 2: return "ERROR"
        default: return "UNSET"
        }
    }

    /// The span's JSON exactly as MLflow writes `spans.content` (`json.dumps(span_dict,
    /// ensure_ascii=False)`; key order as in fixture 13).
    package var contentJSON: String { String(decoding: contentBytes, as: UTF8.self) }

    /// `contentJSON` as UTF-8.
    package var contentBytes: [UInt8] { contentBytes(kindInContent: true) }

    /// The content JSON with or without the `kind` key (MLflow 3.18 writes it, 3.17 does not).
    package func contentBytes(kindInContent: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320 + name.utf8.count + attributes.pairs.reduce(0) {
            $0 + $1.key.utf8.count + ($1.value.stringValue?.utf8.count ?? 16) * 9 / 8 + 8
        })
        Self.writeContent(
            traceID: traceID, spanID: spanID, parentSpanID: parentSpanID, name: name, kind: kindInContent ? kind : nil,
            startTimeUnixNano: startTimeUnixNano, endTimeUnixNano: endTimeUnixNano,
            statusCode: statusCode, statusMessage: statusMessage, into: &out,
            events: { PyJSONWriter.write(.array(events), ensureASCII: false, into: &$0) },
            attributes: { PyJSONWriter.write(.object(attributes), ensureASCII: false, into: &$0) },
            links: { PyJSONWriter.write(.array(links), ensureASCII: false, into: &$0) })
        return out
    }

    /// Writes a span's `spans.content` JSON into `out`: the one place its layout lives. This runs for
    /// every stored span, so ids, numbers and fixed keys go in without intermediate strings; the
    /// closures write the events array, the attributes object and the links array. A nil `kind`
    /// leaves the `kind` key out, as MLflow before 3.18 writes spans.
    package static func writeContent(
        traceID: TraceID, spanID: SpanID, parentSpanID: SpanID, name: String, kind: Int32?,
        startTimeUnixNano: UInt64, endTimeUnixNano: UInt64, statusCode: Int32, statusMessage: String,
        into out: inout [UInt8], events: (inout [UInt8]) -> Void, attributes: (inout [UInt8]) -> Void,
        links: (inout [UInt8]) -> Void
    ) {
        PyJSONWriter.append(#"{"trace_id": ""#, to: &out)
        Base64.appendBigEndian(traceID.high, traceID.low, into: &out)
        PyJSONWriter.append(#"", "span_id": ""#, to: &out)
        Base64.appendBigEndian(spanID.raw, into: &out)
        if parentSpanID.isZero {
            PyJSONWriter.append(#"", "parent_span_id": null, "name": "#, to: &out)
        } else {
            PyJSONWriter.append(#"", "parent_span_id": ""#, to: &out)
            Base64.appendBigEndian(parentSpanID.raw, into: &out)
            PyJSONWriter.append(#"", "name": "#, to: &out)
        }
        PyJSONWriter.writeString(name, ensureASCII: false, into: &out)
        if let kind {
            PyJSONWriter.append(#", "kind": ""#, to: &out)
            PyJSONWriter.append(kindLiteral(kind), to: &out)
            out.append(UInt8(ascii: "\""))
        }
        PyJSONWriter.append(#", "start_time_unix_nano": "#, to: &out)
        PyJSONWriter.appendInt(Int64(clamping: startTimeUnixNano), into: &out)
        PyJSONWriter.append(#", "end_time_unix_nano": "#, to: &out)
        PyJSONWriter.appendInt(Int64(clamping: endTimeUnixNano), into: &out)
        PyJSONWriter.append(#", "events": "#, to: &out)
        events(&out)
        PyJSONWriter.append(#", "status": {"code": "STATUS_CODE_"#, to: &out)
        PyJSONWriter.append(statusLiteral(statusCode), to: &out)
        PyJSONWriter.append(#"", "message": "#, to: &out)
        PyJSONWriter.writeString(statusMessage, ensureASCII: false, into: &out)
        PyJSONWriter.append(#"}, "attributes": "#, to: &out)
        attributes(&out)
        PyJSONWriter.append(#", "links": "#, to: &out)
        links(&out)
        out.append(UInt8(ascii: "}"))
    }
}

/// Attribute keys MLflow reads (mlflow/tracing/constant.py `SpanAttributeKey`).
package enum MLflowKeys {
    package static let requestID = "mlflow.traceRequestId"
    package static let inputs = "mlflow.spanInputs"
    package static let outputs = "mlflow.spanOutputs"
    package static let spanType = "mlflow.spanType"
    package static let tokenUsage = "mlflow.chat.tokenUsage"
    package static let chatTools = "mlflow.chat.tools"
    package static let cost = "mlflow.llm.cost"
    package static let model = "mlflow.llm.model"
    package static let modelProvider = "mlflow.llm.provider"
    package static let traceTagPrefix = "mlflow.traceTag."
    package static let sessionID = "session.id"
    package static let conversationID = "gen_ai.conversation.id"
    package static let userID = "user.id"
    package static let traceName = "mlflow.traceName"
    /// On the AI Gateway's `gateway/<endpoint>` span in the caller's trace: the gateway's own trace.
    package static let gatewayLinkedTraceID = "mlflow.gateway.linkedTraceId"
    /// On the same span: the gateway endpoint's name.
    package static let gatewayEndpointName = "endpoint_name"
}

/// The OpenTelemetry GenAI semantic conventions part of MLflow's storing-time translation
/// (`GenAiTranslator` in mlflow/tracing/otel/translation/genai_semconv.py, applied by
/// `translate_span_when_storing`). MLflow tries eleven other vendor conventions (OpenInference,
/// Traceloop, …) before and after it; Stitch implements only the standard one.
enum GenAITranslation {
    static let spanKindToType: [String: String] = [
        "chat": "CHAT_MODEL", "create_agent": "AGENT", "embeddings": "EMBEDDING", "execute_tool": "TOOL",
        "generate_content": "LLM", "invoke_agent": "AGENT", "text_completion": "LLM", "response": "LLM",
    ]
    static let inputKeys = ["gen_ai.input.messages", "gen_ai.tool.call.arguments"]
    static let outputKeys = ["gen_ai.output.messages", "gen_ai.tool.call.result"]
    static let modelKeys = ["gen_ai.response.model", "gen_ai.request.model"]
    static let inputTokensKey = "gen_ai.usage.input_tokens"
    static let outputTokensKey = "gen_ai.usage.output_tokens"
    static let cacheReadTokensKey = "gen_ai.usage.cache_read.input_tokens"
    /// Read first; `cacheCreationTokensKey` when it is absent.
    static let cacheWriteTokensKey = "gen_ai.usage.cache_write.input_tokens"
    static let cacheCreationTokensKey = "gen_ai.usage.cache_creation.input_tokens"
    static let usageKeys = [inputTokensKey, outputTokensKey, cacheReadTokensKey, cacheWriteTokensKey, cacheCreationTokensKey]
    static let operationKey = "gen_ai.operation.name"
    static let toolDefinitionsKey = "gen_ai.tool.definitions"
    static let providerKey = "gen_ai.provider.name"
    /// Every `gen_ai.*` key `apply` reads. Without one of them it changes nothing, unless a model
    /// name is taken from the inputs or outputs (`mlflow.llm.model` absent, a `"model"` field).
    static let keysRead = [operationKey, toolDefinitionsKey, providerKey] + inputKeys + outputKeys + usageKeys + modelKeys

    static func apply(to attributes: inout PyObject) {
        if let type = spanType(attributes) {
            let current = attributes[MLflowKeys.spanType]?.stringValue.map(MLflowAttributes.loadsOrString)
            if current == nil || current == .null || current == .string("UNKNOWN") {
                attributes[MLflowKeys.spanType] = .string(PyJSONWriter.dump(.string(type), ensureASCII: false))
            }
        }
        if attributes[MLflowKeys.inputs] == nil, let value = firstPresent(inputKeys, in: attributes) {
            attributes[MLflowKeys.inputs] = .string(value)
        }
        if attributes[MLflowKeys.outputs] == nil, let value = firstPresent(outputKeys, in: attributes) {
            attributes[MLflowKeys.outputs] = .string(value)
        }
        if attributes[MLflowKeys.tokenUsage] == nil, let usage = tokenUsage(attributes) {
            attributes[MLflowKeys.tokenUsage] = .string(PyJSONWriter.dump(.object(usage), ensureASCII: false))
        }
        if attributes[MLflowKeys.chatTools] == nil, let tools = firstPresent([toolDefinitionsKey], in: attributes) {
            attributes[MLflowKeys.chatTools] = .string(tools)
        }
        if attributes[MLflowKeys.model] == nil, let model = modelName(attributes) {
            attributes[MLflowKeys.model] = .string(PyJSONWriter.dump(model, ensureASCII: false))
        }
        if attributes[MLflowKeys.modelProvider] == nil,
           let provider = firstPresent([providerKey], in: attributes) {
            let decoded = PyJSONParser.parse(provider) ?? .string(provider)
            if decoded.isTruthy {
                attributes[MLflowKeys.modelProvider] = .string(PyJSONWriter.dump(decoded, ensureASCII: false))
            }
        }
    }

    private static func spanType(_ attributes: PyObject) -> String? {
        guard let raw = attributes[operationKey]?.stringValue, !raw.isEmpty else { return nil }
        let kind = PyJSONParser.parse(raw) ?? .string(raw)
        guard let name = kind.stringValue else { return nil }
        return spanKindToType[name]
    }

    /// `get_attribute_value`: the first key whose value is present and not JSON-falsy
    /// (`{}`, `[]`, `""`, `0`, `null`…), returned as stored.
    static func firstPresent(_ keys: [String], in attributes: PyObject) -> String? {
        for key in keys {
            guard let value = attributes[key]?.stringValue, !value.isEmpty else { continue }
            if let parsed = PyJSONParser.parse(value), !parsed.isTruthy { continue }
            return value
        }
        return nil
    }

    /// `_parse_int_attribute`: an int, or a string holding one (`"26"`, `"\"26\""`).
    static func parseInt(_ value: String?) -> Int64? {
        guard let value else { return nil }
        if let parsed = PyJSONParser.parse(value) {
            switch parsed {
            case .int(let number): return number
            case .string(let text): return Int64(text.trimmingCharacters(in: .whitespaces))
            default: break
            }
        }
        return Int64(value.trimmingCharacters(in: .whitespaces))
    }

    private static func tokenUsage(_ attributes: PyObject) -> PyObject? {
        let input = parseInt(attributes[inputTokensKey]?.stringValue)
        let output = parseInt(attributes[outputTokensKey]?.stringValue)
        guard input != nil || output != nil else { return nil }
        var usage = PyObject()
        if let input { usage[TokenUsage.inputKey] = .int(input) }
        if let output { usage[TokenUsage.outputKey] = .int(output) }
        if let input, let output { usage[TokenUsage.totalKey] = .int(input &+ output) }
        if let cacheRead = parseInt(attributes[cacheReadTokensKey]?.stringValue) {
            usage["cache_read_input_tokens"] = .int(cacheRead)
        }
        let cacheWrite = attributes[cacheWriteTokensKey]?.stringValue ?? attributes[cacheCreationTokensKey]?.stringValue
        if let cacheCreation = parseInt(cacheWrite) {
            usage["cache_creation_input_tokens"] = .int(cacheCreation)
        }
        return usage
    }

    private static let quotedModel = Array(#""model""#.utf8)

    /// Whether inputs or outputs text (as UTF-8) could hold a `model` field: it contains `"model"`.
    /// Most do not, and those are never parsed. (The first byte is found with `memchr`; the
    /// generic `firstRange(of:)` was several times slower on a span's inputs.)
    static func mayNameModel(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = text.baseAddress else { return false }
        let length = quotedModel.count
        var offset = 0
        while text.count - offset >= length {
            guard let found = memchr(base + offset, Int32(quotedModel[0]), text.count - offset - length + 1) else { return false }
            let position = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            if UnsafeBufferPointer(rebasing: text[position..<position + length]).elementsEqual(quotedModel) { return true }
            offset = position + 1
        }
        return false
    }

    /// `_get_model_name`: the GenAI model attributes, else a string `model` field of the span's
    /// inputs or outputs object.
    private static func modelName(_ attributes: PyObject) -> PyJSON? {
        if let value = firstPresent(modelKeys, in: attributes) {
            return PyJSONParser.parse(value) ?? .string(value)
        }
        for key in [MLflowKeys.inputs, MLflowKeys.outputs] {
            // Most inputs have no model field; only parse those that could.
            guard var text = attributes[key]?.stringValue, text.withUTF8(mayNameModel),
                  case .object(let object)? = PyJSONParser.parse(text),
                  let model = object["model"], model.isTruthy else { continue }
            return model.stringValue.map(PyJSON.string)
        }
        return nil
    }
}
