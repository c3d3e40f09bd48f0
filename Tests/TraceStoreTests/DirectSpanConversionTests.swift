import OTLPWire
import StitchTestSupport
import Testing
import TraceAssembler
import TraceEdge
@testable import SQLiteStore
@testable import TraceModel

/// The direct conversion (straight from the span's bytes) against the general one (decode, then
/// MLflow's rules on strings): every row, every fact and the derived trace must be equal, for
/// captured spans and for generated spans full of the cases where the two could part.
@Suite struct DirectSpanConversionTests {
    /// Prepares the trace both ways and compares them; returns how many spans went the direct way.
    @discardableResult
    static func expectBothWaysEqual(_ trace: FinishedTrace, _ context: String) -> Int {
        let direct = PreparedTrace.prepare(trace, experimentID: 3)
        let general = PreparedTrace.prepare(trace, experimentID: 3, direct: false)
        #expect(direct.failures == general.failures, "\(context)")
        guard let mine = direct.trace, let theirs = general.trace else {
            #expect(direct.trace == nil && general.trace == nil, "\(context)")
            return 0
        }
        #expect(mine.spans.count == theirs.spans.count, "\(context)")
        for (a, b) in zip(mine.spans, theirs.spans) {
            #expect(String(decoding: a.row.content, as: UTF8.self) == String(decoding: b.row.content, as: UTF8.self),
                    "\(context) span \(b.row.spanID)")
            var (rowA, rowB) = (a.row, b.row)
            (rowA.content, rowB.content) = ([], [])
            #expect(rowA == rowB, "\(context) span \(b.row.spanID)")
            // Compared as text: a NaN inside a token usage or cost object is unequal to itself.
            #expect(String(describing: a.facts) == String(describing: b.facts), "\(context) span \(b.row.spanID)")
            #expect(a.resourceIndex == b.resourceIndex, "\(context)")
        }
        #expect(mine.resources == theirs.resources, "\(context)")
        #expect(mine.derivedAsNew == theirs.derivedAsNew, "\(context)")
        var converter = DirectSpanConverter()
        let storedRequestID = PyJSONWriter.dumpString(MLflowSpan.requestID(for: trace.traceID))
        return trace.spans.filter { record in
            let service = (try? record.payload.resourceDetail(at: record.resourceIndex)).flatMap(MLflowSpan.serviceNameForRoot)
            return converter.convert(record, serviceNameForRoot: service, storedRequestID: storedRequestID) != nil
        }.count
    }

    @Test func capturedSpansAreConvertedAlikeAndMostlyDirectly() throws {
        var direct = 0
        var total = 0
        for name in [Fixtures.serviceA, Fixtures.serviceB, Fixtures.mlflowClientRoot, Fixtures.mlflowRemoteServer] {
            let batch = try Fixtures.batch(name, experimentID: "1")
            let trace = FinishedTrace(traceID: batch.spans[0].traceID, spans: batch.spans, reason: .closed,
                                      isComplete: true, experimentID: "1")
            direct += Self.expectBothWaysEqual(trace, name)
            total += batch.spans.count
        }
        // Plain OpenTelemetry SDK spans and MLflow's (with its own request id) all go the direct way.
        #expect(direct == total, "\(direct) of \(total) spans went the direct way")
    }

    @Test func generatedSpansAreConvertedAlike() throws {
        var direct = 0
        var total = 0
        for seed in 1...300 as ClosedRange<UInt64> {
            var random = SplitMix64(seed: seed)
            let trace = try Self.generatedTrace(&random, seed: seed)
            direct += Self.expectBothWaysEqual(trace, "seed \(seed)")
            total += trace.spans.count
        }
        // The generator makes most spans of a shape the direct way takes, so both ways are compared.
        #expect(direct * 3 >= total, "\(direct) of \(total) spans went the direct way")
        #expect(direct < total, "every span went the direct way: the general cases were not generated")
    }

    @Test func aServiceSendingSeveralRequestsIsOneResourceOfTheTrace() throws {
        func request(_ service: String, _ spans: [SpanDetail]) throws -> [SpanRecord] {
            let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [
                ResourceSpansDetail(resource: Build.resource([("service.name", service), ("telemetry.sdk.name", "opentelemetry")]),
                                    scopeSpans: [ScopeSpansDetail(scope: nil, spans: spans)]),
            ])
            return try OTLPTraceDecoder.decode(body, experimentID: nil).spans
        }
        let spans = try request("planner", [Build.span(1, name: "root", start: 10, end: 90)])
            + request("tool", [Build.span(2, parent: 1, name: "a", start: 20, end: 30)])
            + request("planner", [Build.span(3, parent: 1, name: "b", start: 40, end: 50)])
        let trace = FinishedTrace(traceID: spans[0].traceID, spans: spans, reason: .closed, isComplete: true, experimentID: nil)
        let prepared = try #require(PreparedTrace.prepare(trace, experimentID: nil).trace)
        #expect(prepared.resources.map(\.serviceName) == ["planner", "tool"])
        #expect(prepared.resourceKeys.count == 2)
        #expect(prepared.spans.map(\.resourceIndex) == [0, 1, 0])
        // Resource tags leave out telemetry.sdk.*; both services are named.
        #expect(prepared.derivedAsNew.tags.map(\.key) == ["mlflow.trace.spansLocation", "service.name", "stitch.completeness", "stitch.services"])
        #expect(prepared.derivedAsNew.tags.last?.value == "planner,tool")
    }

    @Test func aPlainSpanGoesTheDirectWayAndOneWithEventsDoesNot() throws {
        let plain = Build.span(1, name: "plain", start: 10, end: 20)
        var withEvent = Build.span(2, parent: 1, name: "evented", start: 11, end: 19)
        withEvent.events = [SpanEvent(timeUnixNano: 5, name: "exception", attributes: [], droppedAttributesCount: 0)]
        let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [
            ResourceSpansDetail(resource: Build.resource([("service.name", "svc")]),
                                scopeSpans: [ScopeSpansDetail(scope: nil, spans: [plain, withEvent])]),
        ])
        let batch = try OTLPTraceDecoder.decode(body, experimentID: nil)
        var converter = DirectSpanConverter()
        #expect(converter.convert(batch.spans[0], serviceNameForRoot: "svc", storedRequestID: #""tr-1""#) != nil)
        #expect(converter.convert(batch.spans[1], serviceNameForRoot: "svc", storedRequestID: #""tr-1""#) == nil)
    }

    // MARK: Generator

    static let keys = [
        "http.method", "a", "k\"q", "mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.spanType", "mlflow.llm.cost",
        "mlflow.llm.model", "mlflow.llm.provider", "session.id", "user.id", "mlflow.chat.tokenUsage",
        "mlflow.traceTag.env", "mlflow.traceTag.bad/..", "mlflow.traceTag.", "tab\tkey", "key.\(invalidMark)",
        "mlflow.traceRequestId", "gen_ai.operation.name", "gen_ai.conversation.id", "ключ", "gen_ai.request.model",
        "gen_ai.usage.output_tokens", "gen_ai.tool.definitions", "gen_ai.output.messages", "gen_ai.system",
        "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens", "gen_ai.response.model", "gen_ai.provider.name",
        "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    ]
    static let strings = [
        "plain", "", "with \"quote\" and \\ back", "line\nbreak\ttab\u{1}", "ünïcödé ✓ 𝄞", #""CHAIN""#,
        #"{"a": 1, "model": "gpt-4"}"#, #"{"question": "hi"}"#, "[1, 2]", " {not json", "\"unterminated", "42",
        "null", #"  "spaced"  "#, "\(invalidMark)", "{\"cost\": \(invalidMark)}", #"{"input_cost": 1, "total_cost": 2.5}"#,
        #"{"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}"#, #""\"double\"""#, "U+2028 \u{2028} end",
        "chat", "UNKNOWN", #""UNKNOWN""#, "26", #"[{"role": "user", "content": "hi"}]"#, "openai",
    ]
    /// Valid UTF-8 in the generated model, replaced by invalid bytes in the encoded request.
    static let invalidMark = "ÿÿ"

    static func value(_ random: inout SplitMix64, depth: Int = 0) -> AnyValue {
        switch random.next() % 20 {
        case 0: return .int(Int64(bitPattern: random.next()) >> (random.next() % 64))
        case 1: return .bool(random.next() % 2 == 0)
        case 2: return .double([0.5, -0.0, 1e300, .nan, .infinity, 3][Int(random.next() % 6)])
        case 3: return .bytes([0, 39, 34, 92, 200, 65])
        case 4 where depth < 2: return .array((0..<random.next() % 3).map { _ in value(&random, depth: depth + 1) })
        case 5 where depth < 2:
            return .kvlist((0..<random.next() % 3).map { index in KeyValue(key: "k\(index % 2)", value: value(&random, depth: depth + 1)) })
        case 6: return .empty
        default: return .string(strings[Int(random.next() % UInt64(strings.count))])
        }
    }

    static func generatedTrace(_ random: inout SplitMix64, seed: UInt64) throws -> FinishedTrace {
        let traceID = TraceID(high: seed, low: 0xABCD)
        var spans: [SpanDetail] = []
        for index in 0..<(1 + random.next() % 6) {
            var span = Build.span(index + 1, parent: index == 0 ? 0 : 1 + random.next() % index, trace: traceID,
                                  name: ["step", "ünï", "q\"uote", invalidMark, ""][Int(random.next() % 5)],
                                  start: 1_000 + index, end: 2_000 + random.next() % 1_000)
            span.kind = Int32(random.next() % 7)
            span.statusCode = Int32(random.next() % 4)
            span.statusMessage = random.next() % 2 == 0 ? "boom \"x\"" : ""
            // Mostly plain attributes, so that most spans go the direct way.
            let plainOnly = random.chance(0.5)
            let plainKeys = ["http.method", "mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.spanType", "mlflow.traceTag.env",
                             "session.id", "a", "mlflow.llm.cost", "user.id", "mlflow.chat.tokenUsage", "mlflow.traceRequestId",
                             "gen_ai.request.model", "gen_ai.operation.name", "gen_ai.usage.input_tokens",
                             "gen_ai.conversation.id", "gen_ai.provider.name", "gen_ai.input.messages", "gen_ai.system",
                             "gen_ai.usage.output_tokens", "gen_ai.response.model"].shuffled(using: &random)
            span.attributes = (0..<random.next() % 17).map { index in
                let key = plainOnly ? plainKeys[Int(index)] : keys[Int(random.next() % UInt64(keys.count))]
                return KeyValue(key: key, value: value(&random))
            }
            if !plainOnly, random.chance(0.2) {
                span.events = [SpanEvent(timeUnixNano: 9, name: "e", attributes: [KeyValue(key: "x", value: .int(1))], droppedAttributesCount: 0)]
            }
            if !plainOnly, random.chance(0.1) {
                span.links = [SpanLink(traceID: Array(repeating: 1, count: 16), spanID: Array(repeating: 2, count: 8),
                                       traceState: "", attributes: [KeyValue(key: "b", value: .bytes([1, 2]))],
                                       droppedAttributesCount: 0, flags: 0)]
            }
            spans.append(span)
        }
        let service = random.chance(0.1) ? "claude-code" : "svc-\(random.next() % 2)"
        let split = Int(random.next() % UInt64(spans.count + 1))
        var body = OTLPTraceEncoder.encodeRequest(resourceSpans: [
            ResourceSpansDetail(resource: Build.resource([("service.name", service)]),
                                scopeSpans: [ScopeSpansDetail(scope: nil, spans: Array(spans[..<split]))]),
            ResourceSpansDetail(resource: Build.resource([("service.name", "other")]),
                                scopeSpans: [ScopeSpansDetail(scope: nil, spans: Array(spans[split...]))]),
        ])
        replaceInvalidMarks(&body)
        let batch = try OTLPTraceDecoder.decode(body, experimentID: "3")
        return FinishedTrace(traceID: traceID, spans: batch.spans, reason: .closed, isComplete: true, experimentID: "3")
    }

    /// Replaces every `invalidMark` (C3 BF C3 BF) by bytes that are not UTF-8 (FF FE 80 C3).
    static func replaceInvalidMarks(_ bytes: inout [UInt8]) {
        let mark = Array(invalidMark.utf8)
        var index = 0
        while index + mark.count <= bytes.count {
            if bytes[index..<index + mark.count].elementsEqual(mark) {
                bytes.replaceSubrange(index..<index + mark.count, with: [0xFF, 0xFE, 0x80, 0xC3])
                index += mark.count
            } else {
                index += 1
            }
        }
    }
}

@Suite struct ParallelPreparationTests {
    @Test("a batch prepared in two halves at once equals the batch prepared on one task, in order")
    func halvesEqualOneTask() async throws {
        var random = SplitMix64(seed: 11)
        var finished: [FinishedTrace] = []
        for seed in 0..<100 { finished.append(try DirectSpanConversionTests.generatedTrace(&random, seed: UInt64(seed))) }
        // One id twice: the later copy stays after the earlier, as the writers' merge order needs.
        finished.append(finished[3])
        let serial = PreparedBatch(finished, kindInContent: false) { _ in "5" }
        let parallel = await PreparedBatch.inParallel(finished, kindInContent: false) { _ in "5" }
        #expect(parallel.traces.map(\.requestID) == serial.traces.map(\.requestID))
        #expect(parallel.traces.map(\.experimentID) == serial.traces.map(\.experimentID))
        #expect(parallel.traces.map { $0.spans.map(\.row) } == serial.traces.map { $0.spans.map(\.row) })
        #expect(parallel.traces.map(\.derivedAsNew) == serial.traces.map(\.derivedAsNew))
        #expect(parallel.problems.map(\.message) == serial.problems.map(\.message))
    }
}
