import Foundation
import OTLPModel
import SwiftProtobuf
import Testing
@testable import OTLPWire

/// Raw ids of every span in request order, as swift-protobuf reads them.
private func rawIDs(_ bytes: [UInt8]) throws -> [[Data]] {
    try Oracle.parse(bytes).resourceSpans.flatMap(\.scopeSpans).flatMap(\.spans).map {
        [$0.traceID, $0.spanID, $0.parentSpanID]
    }
}

private func json(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A one-span request around `span` (a JSON object body).
private func request(span: String) -> [UInt8] {
    json(#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[\#(span)]}]}]}"#)
}

private let traceHex = "5b8efff798038103d269b633813fc60c"
private let spanHex = "eee19b7ec3c1b174"

@Suite("OTLP/JSON")
struct OTLPJSONTests {
    // MARK: round trips

    static func roundTrip(_ bytes: [UInt8], _ context: Comment) throws {
        let text = try OTLPJSON.jsonFromProtobuf(bytes)
        // What we write is JSON that Foundation accepts too.
        #expect((try? JSONSerialization.jsonObject(with: Data(text))) != nil, context)
        let back = try OTLPJSON.protobufFromJSON(text)
        #expect(Oracle.detail(try Oracle.parse(back)).canonical == Oracle.detail(try Oracle.parse(bytes)).canonical, context)
        #expect(try rawIDs(back) == rawIDs(bytes), context)
        let original = try OTLPTraceDecoder.decode(bytes, experimentID: nil)
        let converted = try OTLPTraceDecoder.decode(back, experimentID: nil)
        #expect(converted.rejectedSpans == original.rejectedSpans, context)
        #expect(converted.firstRejection == original.firstRejection, context)
    }

    @Test("fixtures: protobuf → JSON → protobuf keeps everything", arguments: Fixtures.bodyNames)
    func fixtureRoundTrip(name: String) throws {
        try Self.roundTrip(try Fixtures.body(name), "\(name)")
    }

    @Test("random requests: protobuf → JSON → protobuf keeps everything, invalid ids included", arguments: 0..<10)
    func randomRoundTrip(chunk: Int) throws {
        for seed in UInt64(chunk * 10 + 1001)...UInt64(chunk * 10 + 1010) {
            var generator = RandomRequests(seed: seed)
            try Self.roundTrip(try generator.request(maxSpansPerScope: 20).serializedBytes(), "seed \(seed)")
        }
    }

    @Test("fixture 01 as hex JSON has the ids as lowercase hex")
    func hexIDs() throws {
        let text = String(decoding: try OTLPJSON.jsonFromProtobuf(try Fixtures.body("01-otelsdk-serviceA-3spans.pb")), as: UTF8.self)
        #expect(text.contains(#""traceId":"3bb6c5d66706eddb63619b9d8070258a""#))
        #expect(text.hasPrefix(#"{"resourceSpans":[{"resource":{"attributes":[{"key":"telemetry.sdk.language","value":{"stringValue":"python"}}"#))
    }

    // MARK: what other writers send

    @Test("protobuf's own proto3 JSON (base64 ids, enum names, camelCase) reads like the binary body")
    func protobufJSONCamelCase() throws {
        let bytes = try OTLPJSON.protobufFromJSON(json(ProtobufJSONSamples.fixture01CamelCase))
        let expected = try Fixtures.body("01-otelsdk-serviceA-3spans.pb")
        #expect(try OTLPTraceDecoder.decodeDetail(bytes) == OTLPTraceDecoder.decodeDetail(expected))
        #expect(try OTLPTraceDecoder.decode(bytes, experimentID: nil).rejectedSpans == 0)
    }

    @Test("protobuf's proto3 JSON with snake_case field names reads like the binary body")
    func protobufJSONSnakeCase() throws {
        let bytes = try OTLPJSON.protobufFromJSON(json(ProtobufJSONSamples.fixture08SnakeCase))
        let expected = try Fixtures.body("08-mlflow-client-to-tracking-server-v1traces-client-root.pb")
        #expect(try OTLPTraceDecoder.decodeDetail(bytes) == OTLPTraceDecoder.decodeDetail(expected))
    }

    @Test("upper-case hex ids, int64 as numbers and strings, enum names, unknown fields, nulls")
    func lenientInputs() throws {
        let body = request(span: #"""
        {"traceId":"\#(traceHex.uppercased())","spanId":"EeE19b7eC3C1B174","parentSpanId":null,
         "name":"op","kind":"SPAN_KIND_SERVER","startTimeUnixNano":18446744073709551615,
         "endTimeUnixNano":"1795288735331609459","flags":"768","droppedAttributesCount":3,
         "unknownObject":{"a":[1,2,{"b":null}]},"unknownNumber":1e400,
         "attributes":[
           {"key":"i1","value":{"intValue":-9223372036854775808}},
           {"key":"i2","value":{"intValue":"9223372036854775807"}},
           {"key":"d1","value":{"doubleValue":"NaN"}},
           {"key":"d2","value":{"doubleValue":"-Infinity"}},
           {"key":"d3","value":{"doubleValue":2.5e-3}},
           {"key":"d4","value":{"doubleValue":"17"}},
           {"key":"b","value":{"boolValue":false}},
           {"key":"s","value":{"stringValue":"\u00e9\ud83d\ude42\n"}},
           {"key":"by","value":{"bytesValue":"AAEC/w=="}},
           {"key":"by2","value":{"bytesValue":"AAEC_w"}},
           {"key":"e","value":{}},
           {"key":"n","value":null},
           {"key":"a","value":{"arrayValue":{"values":[{"intValue":0},{"stringValue":""}]}}},
           {"key":"kv","value":{"kvlistValue":{"values":[{"key":"x","value":{"boolValue":true}}]}}},
           {"key":"x","value":{"stringValue":"y"},"extra":[true]}
         ],
         "events":[{"timeUnixNano":"5","name":"ev","attributes":[],"droppedAttributesCount":"1"}],
         "links":[{"traceId":"\#(traceHex)","spanId":"\#(spanHex)","flags":1,"traceState":"k=v"}],
         "status":{"code":"STATUS_CODE_ERROR","message":"boom"}}
        """#)
        let batch = try OTLPTraceDecoder.decode(try OTLPJSON.protobufFromJSON(body), experimentID: nil)
        #expect(batch.rejectedSpans == 0)
        let record = try #require(batch.spans.first)
        #expect(record.traceID.hex == traceHex)
        #expect(record.spanID.hex == spanHex)
        #expect(record.isRoot)
        #expect(record.kind == 2)
        #expect(record.startTimeUnixNano == UInt64.max)
        #expect(record.endTimeUnixNano == 1_795_288_735_331_609_459)
        #expect(record.flags == 768)
        #expect(record.statusCode == 2)
        #expect(record.serviceName == "svc")
        let detail = try record.decodeDetail()
        #expect(detail.statusMessage == "boom")
        #expect(detail.droppedAttributesCount == 3)
        #expect(detail.attribute("i1") == .int(.min))
        #expect(detail.attribute("i2") == .int(.max))
        guard case .double(let nan) = detail.attribute("d1") else {
            Issue.record("d1 is not a double")
            return
        }
        #expect(nan.isNaN)
        #expect(detail.attribute("d2") == .double(-.infinity))
        #expect(detail.attribute("d3") == .double(0.0025))
        #expect(detail.attribute("d4") == .double(17))
        #expect(detail.attribute("b") == .bool(false))
        #expect(detail.attribute("s") == .string("é🙂\n"))
        #expect(detail.attribute("by") == .bytes([0, 1, 2, 255]))
        #expect(detail.attribute("by2") == .bytes([0, 1, 2, 255]))
        #expect(detail.attribute("e") == .empty)
        #expect(detail.attribute("n") == .empty)
        #expect(detail.attribute("a") == .array([.int(0), .string("")]))
        #expect(detail.attribute("kv") == .kvlist([KeyValue(key: "x", value: .bool(true))]))
        #expect(detail.attribute("x") == .string("y"))
        #expect(detail.events == [SpanEvent(timeUnixNano: 5, name: "ev", attributes: [], droppedAttributesCount: 1)])
        #expect(detail.links.first?.traceID == TraceID(hex: traceHex)?.bytes)
        #expect(detail.links.first?.spanID == SpanID(hex: spanHex)?.bytes)
        #expect(detail.links.first?.traceState == "k=v")
        #expect(detail.links.first?.flags == 1)
    }

    @Test("base64 ids (24 / 12 characters) are decoded as base64")
    func base64IDs() throws {
        let trace = Base64.encode(TraceID(hex: traceHex)!.bytes)
        let span = Base64.encode(SpanID(hex: spanHex)!.bytes)
        #expect(trace.count == 24 && span.count == 12)
        let body = request(span: #"{"traceId":"\#(trace)","spanId":"\#(span)","parentSpanId":"\#(span)","name":"b64"}"#)
        let record = try #require(try OTLPTraceDecoder.decode(try OTLPJSON.protobufFromJSON(body), experimentID: nil).spans.first)
        #expect(record.traceID.hex == traceHex)
        #expect(record.spanID.hex == spanHex)
        #expect(record.parentSpanID.hex == spanHex)
    }

    @Test("ids written as base64 straight from their halves match Foundation's base64 of their bytes")
    func base64FromHalves() throws {
        let trace = try #require(TraceID(hex: traceHex))
        let span = try #require(SpanID(hex: spanHex))
        var out: [UInt8] = []
        Base64.appendBigEndian(trace.high, trace.low, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == Data(trace.bytes).base64EncodedString())
        out = []
        Base64.appendBigEndian(span.raw, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == Data(span.bytes).base64EncodedString())
    }

    @Test("a malformed id rejects its span only",
          arguments: [
              (#""traceId":"xyz","spanId":"\#(spanHex)""#, "trace_id must be 16 bytes, got 3"),
              (#""traceId":"\#(traceHex.dropLast(2))","spanId":"\#(spanHex)""#, "trace_id must be 16 bytes, got 15"),
              (#""traceId":"\#(String(repeating: "g", count: 16))","spanId":"\#(spanHex)""#, "trace_id must be 16 bytes, got 17"),
              (#""traceId":"\#(traceHex)","spanId":"0123""#, "span_id must be 8 bytes, got 2"),
              (#""traceId":"\#(traceHex)","spanId":"\#(spanHex)","parentSpanId":"zz""#, "parent_span_id must be empty or 8 bytes, got 2"),
              (#""traceId":"\#(traceHex)""#, "span_id must be 8 bytes, got 0"),
              (#""traceId":"00000000000000000000000000000000","spanId":"\#(spanHex)""#, "trace_id must not be all zeros"),
          ])
    func malformedIDs(ids: String, problem: String) throws {
        let body = json(#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"\#(traceHex)","spanId":"\#(spanHex)"},{\#(ids)},{"traceId":"\#(traceHex)","spanId":"0000000000000001"}]}]}]}"#)
        let batch = try OTLPTraceDecoder.decode(try OTLPJSON.protobufFromJSON(body), experimentID: nil)
        #expect(batch.rejectedSpans == 1)
        #expect(batch.firstRejection == "resource_spans[0].scope_spans[0].spans[1]: \(problem)")
        #expect(batch.spans.map(\.spanID.raw) == [SpanID(hex: spanHex)!.raw, 1])
    }

    @Test("an empty request and an empty object are valid")
    func emptyRequests() throws {
        #expect(try OTLPJSON.protobufFromJSON(json("{}")).isEmpty)
        #expect(try OTLPJSON.protobufFromJSON(json(#" {"resourceSpans":[]} "#)).isEmpty)
        #expect(try OTLPJSON.jsonFromProtobuf([]) == json("{}"))
    }

    // MARK: malformed JSON

    @Test("invalid JSON names the byte offset",
          arguments: [
              (#"{"resourceSpans": [}"#, 19),
              (#"{"a":1,}"#, 7),
              (#"{"a":01}"#, 6),
              ("{\"a\":\"\u{01}\"}", 6),
              (#"{"a":"\x"}"#, 6),
              (#"{"a":tru}"#, 5),
              (#"{"a":1} x"#, 8),
              ("", 0),
          ])
    func invalidJSON(text: String, offset: Int) {
        #expect(throws: WireError.self) { try OTLPJSON.protobufFromJSON(json(text)) }
        do {
            _ = try OTLPJSON.protobufFromJSON(json(text))
        } catch {
            #expect(error.message.hasPrefix("invalid JSON at byte \(offset):"), "\(error.message)")
        }
    }

    @Test("values of the wrong type are refused with their offset",
          arguments: [
              (#"{"resourceSpans":{}}"#, #"invalid OTLP/JSON at byte 17: "resourceSpans" must be an array"#),
              (#"{"resourceSpans":[{"schemaUrl":5}]}"#, #"invalid OTLP/JSON at byte 31: "schemaUrl" must be a string"#),
              (#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}"#,
               #"invalid OTLP/JSON at byte 64: "startTimeUnixNano" must be an unsigned 64-bit integer (number or decimal string)"#),
              (#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"endTimeUnixNano":18446744073709551616}]}]}]}"#,
               #"invalid OTLP/JSON at byte 62: "endTimeUnixNano" must be an unsigned 64-bit integer (number or decimal string)"#),
              (#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SERVER"}]}]}]}"#,
               #"invalid OTLP/JSON at byte 51: "kind" must be a 64-bit integer (number or decimal string)"#),
              (#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"flags":1.5}]}]}]}"#,
               #"invalid OTLP/JSON at byte 52: "flags" must be an unsigned 32-bit integer"#),
          ])
    func wrongTypes(text: String, message: String) {
        #expect(throws: WireError(message)) { try OTLPJSON.protobufFromJSON(json(text)) }
    }

    @Test("every truncation of a JSON body throws or converts, never traps")
    func truncations() throws {
        let text = try OTLPJSON.jsonFromProtobuf(try Fixtures.body("08-mlflow-client-to-tracking-server-v1traces-client-root.pb"))
        var thrown = 0
        for length in 0..<text.count {
            do {
                let bytes = try OTLPJSON.protobufFromJSON(Array(text.prefix(length)))
                _ = try OTLPTraceDecoder.decode(bytes, experimentID: nil)
            } catch {
                thrown += 1
            }
        }
        // Only the complete document is valid JSON.
        #expect(thrown == text.count)
    }

    @Test("nesting is bounded: deep JSON is an error, not a stack overflow")
    func deepNesting() {
        let deep = json(String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000))
        #expect(throws: WireError("invalid JSON at byte \(JSONParser.maxDepth): nesting deeper than \(JSONParser.maxDepth) levels")) {
            try OTLPJSON.protobufFromJSON(deep)
        }
        // AnyValues nested deeper than the decoder allows convert, and the decoder then refuses them.
        var value = #"{"stringValue":"leaf"}"#
        for _ in 0..<40 { value = #"{"arrayValue":{"values":[\#(value)]}}"# }
        let body = request(span: #"{"traceId":"\#(traceHex)","spanId":"\#(spanHex)","attributes":[{"key":"deep","value":\#(value)}]}"#)
        #expect(throws: WireError.self) { try OTLPTraceDecoder.decode(try OTLPJSON.protobufFromJSON(body), experimentID: nil) }
    }
}
