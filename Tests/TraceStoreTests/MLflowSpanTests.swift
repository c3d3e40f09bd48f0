import Foundation
import OTLPWire
import Testing
@testable import SQLiteStore
@testable import TraceModel

// The expected span JSON below was produced by MLflow 3.17.2 itself, from the same spans built as
// OTLP protobufs: `translate_span_when_storing(Span.from_otel_proto(span, resource=…))` dumped with
// `json.dumps(…, cls=TraceJSONEncoder, ensure_ascii=False)` (what `log_spans` stores), with
// otel_api's known-client `service.name` copy applied for the root, and with `"kind"` inserted after
// `"name"` as MLflow 3.18 writes it (fixture 13); 3.17.2 has no kind key.
@Suite struct MLflowSpanTests {
    static let childContent = #"{"trace_id": "O7bF1mcG7dtjYZudgHAlig==", "span_id": "E8Om5rPyqlM=", "parent_span_id": "TMmFgZa9/e8=", "name": "näme \"q\" 😀", "kind": "SPAN_KIND_CLIENT", "start_time_unix_nano": 1795288735064262638, "end_time_unix_nano": 1795288735080213631, "events": [{"name": "ev1", "time_unix_nano": 1795288735070000000, "attributes": {"a": "x", "n": 3, "l": [1, 2], "kv": {"z": 1}, "by": "b'\\x01'"}}], "status": {"code": "STATUS_CODE_ERROR", "message": "boom"}, "attributes": {"s": "\"plain\"", "j": "{\"a\": 1}", "n": "\"4\"", "q": "\"quoted\"", "i": "42", "neg": "-7", "d": "1.5", "d2": "1e+16", "d3": "1e-05", "d4": "3.0", "b": "true", "by": "\"b\\\"\\\\x00ab'c\\\\xff\\\"\"", "arr": "[1, \"x\", 2.5, null, false]", "kv": "{\"k\": \"v\", \"n\": [1, 2]}", "none": "null", "uni": "\"héllo\\u0001\\n\\t\\\"\\\\\"", "ws": " [1, 2] ", "emptys": "\"\"", "lst": "[1,2]", "dq": "\"\\\"x\\\"\"", "tru": "\"true\"", "nul": "\"null\"", "dup": "\"second\"", "gen_ai.usage.input_tokens": "10", "gen_ai.usage.output_tokens": "\"5\"", "gen_ai.operation.name": "\"chat\"", "gen_ai.request.model": "\"gpt-x\"", "gen_ai.input.messages": "[{\"role\": \"user\", \"content\": \"hi\"}]", "mlflow.traceRequestId": "\"tr-3bb6c5d66706eddb63619b9d8070258a\"", "mlflow.spanType": "\"CHAT_MODEL\"", "mlflow.spanInputs": "[{\"role\": \"user\", \"content\": \"hi\"}]", "mlflow.chat.tokenUsage": "{\"input_tokens\": 10, \"output_tokens\": 5, \"total_tokens\": 15}", "mlflow.llm.model": "\"gpt-x\""}, "links": [{"trace_id": "tr-00000000000000000000000000000abc", "span_id": "0000000000000def", "attributes": {"a": "x", "by": "AQI=", "l": [1, "a"]}}, {"trace_id": "tr-0123456789abcdef0123456789abcdef", "span_id": "0123456789abcdef", "attributes": null}]}"#
    static let rootContent = #"{"trace_id": "O7bF1mcG7dtjYZudgHAlig==", "span_id": "TMmFgZa9/e8=", "parent_span_id": null, "name": "root", "kind": "SPAN_KIND_INTERNAL", "start_time_unix_nano": 1795288735000000000, "end_time_unix_nano": 1795288736000000000, "events": [], "status": {"code": "STATUS_CODE_OK", "message": ""}, "attributes": {"mlflow.spanType": "\"CHAIN\"", "mlflow.traceRequestId": "\"tr-3bb6c5d66706eddb63619b9d8070258a\"", "mlflow.traceTag.team": "\"search\"", "mlflow.spanInputs": "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": \"what is 2+2?\"}]}", "service.name": "\"claude-code\""}, "links": []}"#

    static let child = Build.span(
        0x13c3_a6e6_b3f2_aa53, parent: 0x4cc9_8581_96bd_fdef,
        trace: TraceID(hex: "3bb6c5d66706eddb63619b9d8070258a")!, name: "näme \"q\" 😀",
        start: 1_795_288_735_064_262_638, end: 1_795_288_735_080_213_631, status: 2, kind: 3,
        attributes: [
            ("s", .string("plain")), ("j", .string(#"{"a": 1}"#)), ("n", .string("4")), ("q", .string(#""quoted""#)),
            ("i", .int(42)), ("neg", .int(-7)), ("d", .double(1.5)), ("d2", .double(1e16)), ("d3", .double(1e-05)),
            ("d4", .double(3.0)), ("b", .bool(true)), ("by", .bytes(Array("\u{00}ab'c".utf8) + [0xFF])),
            ("arr", .array([.int(1), .string("x"), .double(2.5), .empty, .bool(false)])),
            ("kv", .kvlist([KeyValue(key: "k", value: .string("v")), KeyValue(key: "n", value: .array([.int(1), .int(2)]))])),
            ("none", .empty), ("uni", .string("héllo\u{01}\n\t\"\\")), ("ws", .string(" [1, 2] ")),
            ("emptys", .string("")), ("lst", .string("[1,2]")), ("dq", .string(#""\"x\"""#)), ("tru", .string("true")),
            ("nul", .string("null")), ("dup", .string("first")), ("dup", .string("second")),
            ("gen_ai.usage.input_tokens", .int(10)), ("gen_ai.usage.output_tokens", .string("5")),
            ("gen_ai.operation.name", .string("chat")), ("gen_ai.request.model", .string("gpt-x")),
            ("gen_ai.input.messages", .string(#"[{"role": "user", "content": "hi"}]"#)),
        ])

    static func childWithEventsAndLinks() -> SpanDetail {
        var detail = child
        detail.statusMessage = "boom"
        detail.events = [SpanEvent(timeUnixNano: 1_795_288_735_070_000_000, name: "ev1", attributes: [
            KeyValue(key: "a", value: .string("x")), KeyValue(key: "n", value: .int(3)),
            KeyValue(key: "l", value: .array([.int(1), .int(2)])),
            KeyValue(key: "kv", value: .kvlist([KeyValue(key: "z", value: .int(1))])),
            KeyValue(key: "by", value: .bytes([0x01])),
        ], droppedAttributesCount: 0)]
        detail.links = [
            SpanLink(traceID: [UInt8](repeating: 0, count: 14) + [0x0a, 0xbc], spanID: [0, 0, 0, 0, 0, 0, 0x0d, 0xef], traceState: "",
                     attributes: [KeyValue(key: "a", value: .string("x")), KeyValue(key: "by", value: .bytes([1, 2])),
                                  KeyValue(key: "l", value: .array([.int(1), .string("a")]))],
                     droppedAttributesCount: 0, flags: 0),
            SpanLink(traceID: TraceID(hex: "0123456789abcdef0123456789abcdef")!.bytes, spanID: SpanID(hex: "0123456789abcdef")!.bytes,
                     traceState: "", attributes: [], droppedAttributesCount: 0, flags: 0),
        ]
        return detail
    }

    static let root = Build.span(
        0x4cc9_8581_96bd_fdef, trace: TraceID(hex: "3bb6c5d66706eddb63619b9d8070258a")!, name: "root",
        start: 1_795_288_735_000_000_000, end: 1_795_288_736_000_000_000, status: 1, kind: 0,
        attributes: [
            ("mlflow.spanType", .string(#""CHAIN""#)), ("mlflow.traceRequestId", .string(#""tr-zzz""#)),
            ("mlflow.traceTag.team", .string(#""search""#)),
            ("mlflow.spanInputs", .string(#"{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is 2+2?"}]}"#)),
        ])

    @Test func contentMatchesMLflowForEveryValueKind() {
        let span = MLflowSpan(detail: Self.childWithEventsAndLinks(), resource: nil)
        #expect(span.contentJSON == Self.childContent)
    }

    @Test func rootFromKnownClientGetsServiceNameAndStatusMessageIsDroppedUnlessError() {
        var detail = Self.root
        detail.statusMessage = "ignored"
        let resource = ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string("claude-code")),
                                                   KeyValue(key: "telemetry.sdk.name", value: .string("x"))])
        #expect(MLflowSpan(detail: detail, resource: resource).contentJSON == Self.rootContent)
    }

    @Test func otherServiceNamesAreNotCopiedOntoTheRoot() {
        let resource = Build.resource([("service.name", "service-a")])
        #expect(MLflowSpan(detail: Self.root, resource: resource).attribute("service.name") == nil)
    }

    @Test func rowColumnsComeFromTheStoredAttributes() {
        let childRow = SpanRow(span: MLflowSpan(detail: Self.child, resource: nil))
        #expect(childRow.spanID == "13c3a6e6b3f2aa53")
        #expect(childRow.parentSpanID == "4cc9858196bdfdef")
        #expect(childRow.status == "ERROR")
        // MLflow leaves the type column empty here (Span.span_type reads the untranslated
        // attributes); Stitch stores the translated type that the content carries.
        #expect(childRow.type == "CHAT_MODEL")
        #expect(childRow.modelName == "gpt-x")
        #expect(childRow.modelProvider == nil)
        let rootRow = SpanRow(span: MLflowSpan(detail: Self.root, resource: nil))
        #expect(rootRow.parentSpanID == nil)
        #expect(rootRow.type == "CHAIN")
        #expect(rootRow.status == "OK")
    }

    @Test(arguments: [
        (AnyValue.string("CHAIN"), #""CHAIN""#), (.string(#"{"question": "q"}"#), #"{"question": "q"}"#),
        (.string("4"), #""4""#), (.string(#""CHAIN""#), #""CHAIN""#), (.string("[1, 2]"), "[1, 2]"),
        (.string("true"), #""true""#), (.int(4), "4"), (.string(""), #""""#),
    ])
    func storedAttributeValues(value: AnyValue, expected: String) {
        #expect(MLflowAttributes.storedValue(value) == expected)
    }

    @Test func intHexPadsAndStripsLikePythonFormatting() {
        #expect(MLflowSpan.intHex([0x0a, 0xbc], width: 16) == "0000000000000abc")
        #expect(MLflowSpan.intHex([], width: 4) == "0000")
        #expect(MLflowSpan.intHex([0, 0, 0x01, 0x02, 0x03], width: 4) == "10203")
    }
}

extension MLflowSpanTests {
    @Test func aModelFieldInTheInputsNamesTheModel() {
        let span = MLflowSpan(detail: Build.span(1, start: 1, end: 2, attributes: [
            ("mlflow.spanInputs", .string(#"{"model": "gpt-4o", "messages": []}"#)), ("gen_ai.provider.name", .string("openai")),
        ]), resource: nil)
        #expect(span.attribute("mlflow.llm.model") == #""gpt-4o""#)
        #expect(span.attribute("mlflow.llm.provider") == #""openai""#)
        let row = SpanRow(span: span)
        #expect(row.modelName == "gpt-4o")
        #expect(row.modelProvider == "openai")
        let plain = MLflowSpan(detail: Build.span(1, start: 1, end: 2, attributes: [("mlflow.spanInputs", .string(#"{"models": 1}"#))]),
                               resource: nil)
        #expect(plain.attribute("mlflow.llm.model") == nil)
    }

    @Test func theModelFieldSearchFindsItAnywhereAndOnlyWhole() {
        func check(_ text: String) -> Bool {
            var text = text
            return text.withUTF8(GenAITranslation.mayNameModel)
        }
        #expect(check(#""model""#))
        #expect(check(#"{"a": "mode", "model": 1}"#))
        #expect(check(#"xx"model""#))
        #expect(!check(#""mode"#))
        #expect(!check(#"{"models": 1, "mode": 2, "xmodel": 3}"#))
        #expect(!check(""))
    }
}
