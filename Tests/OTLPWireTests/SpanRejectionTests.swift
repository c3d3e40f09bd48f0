import Testing
@testable import OTLPWire

/// Builds requests with raw (possibly invalid) ids, one scope per resource.
private func request(spans: [(trace: [UInt8], span: [UInt8], parent: [UInt8])], scopes: Int = 1) -> [UInt8] {
    var writer = WireWriter()
    writer.message(Field.Request.resourceSpans) { writer in
        for scope in 0..<scopes {
            writer.message(Field.ResourceSpans.scopeSpans) { writer in
                for (index, ids) in spans.enumerated() where index % scopes == scope {
                    writer.message(Field.ScopeSpans.spans) { writer in
                        writer.bytesField(Field.Span.traceID, ids.trace)
                        writer.bytesField(Field.Span.spanID, ids.span)
                        writer.bytesField(Field.Span.parentSpanID, ids.parent)
                        writer.stringField(Field.Span.name, "span-\(index)")
                    }
                }
            }
        }
    }
    return writer.bytes
}

private let goodTrace: [UInt8] = Array(1...16)
private let goodSpan: [UInt8] = Array(1...8)

@Suite("Per-span rejection (OTLP partial success)")
struct SpanRejectionTests {
    @Test("bad ids are rejected one by one, good spans kept",
          arguments: [
              (Array(goodTrace.prefix(8)), goodSpan, [UInt8](), "trace_id must be 16 bytes, got 8"),
              ([UInt8](repeating: 0, count: 16), goodSpan, [], "trace_id must not be all zeros"),
              ([], goodSpan, [], "trace_id must be 16 bytes, got 0"),
              (goodTrace, Array(goodSpan.prefix(4)), [], "span_id must be 8 bytes, got 4"),
              (goodTrace, [UInt8](repeating: 0, count: 8), [], "span_id must not be all zeros"),
              (goodTrace, goodSpan, Array(goodTrace), "parent_span_id must be empty or 8 bytes, got 16"),
          ])
    func rejects(trace: [UInt8], span: [UInt8], parent: [UInt8], message: String) throws {
        let body = request(spans: [
            (goodTrace, goodSpan, []),
            (goodTrace, [9, 9, 9, 9, 9, 9, 9, 9], goodSpan),
            (trace, span, parent),
            (goodTrace, [7, 7, 7, 7, 7, 7, 7, 7], goodSpan),
        ], scopes: 2)
        let batch = try OTLPTraceDecoder.decode(body, experimentID: nil)
        #expect(batch.rejectedSpans == 1)
        // Span 2 of 4 sits in scope 0 (even indices) as its second span.
        #expect(batch.firstRejection == "resource_spans[0].scope_spans[0].spans[1]: \(message)")
        #expect(batch.spans.map(\.spanID.raw) == [0x0102030405060708, 0x0909090909090909, 0x0707070707070707])
        #expect(try batch.spans.map { try $0.decodeDetail().name } == ["span-0", "span-1", "span-3"])
    }

    @Test("an all-zero 8-byte parent means root")
    func zeroParentIsRoot() throws {
        let batch = try OTLPTraceDecoder.decode(
            request(spans: [(goodTrace, goodSpan, [UInt8](repeating: 0, count: 8))]), experimentID: nil
        )
        #expect(batch.rejectedSpans == 0)
        #expect(batch.spans.first?.isRoot == true)
    }

    @Test("every span rejected: counted, none kept, first named")
    func allRejected() throws {
        let batch = try OTLPTraceDecoder.decode(
            request(spans: [([1], goodSpan, []), (goodTrace, [2], []), ([], [], [])]), experimentID: nil
        )
        #expect(batch.rejectedSpans == 3)
        #expect(batch.spans.isEmpty)
        #expect(batch.firstRejection == "resource_spans[0].scope_spans[0].spans[0]: trace_id must be 16 bytes, got 1")
    }
}

@Suite("Malformed bodies")
struct MalformedBodyTests {
    @Test("every truncation of every fixture throws or decodes, never traps", arguments: Fixtures.bodyNames)
    func truncations(name: String) throws {
        let body = try Fixtures.body(name)
        var thrown = 0
        for length in 0..<body.count {
            do {
                let batch = try OTLPTraceDecoder.decode(Array(body.prefix(length)), experimentID: nil)
                // Whatever decoded must be fully decodable.
                for span in batch.spans { _ = try span.decodeDetail() }
                for index in batch.payload.resources.indices { _ = try batch.payload.resourceDetail(at: index) }
                for index in batch.payload.scopes.indices { _ = try batch.payload.scopeDetail(at: index) }
            } catch {
                #expect(!error.message.isEmpty)
                thrown += 1
            }
        }
        #expect(thrown > 0)
    }

    @Test("hand-built records with ranges outside the payload throw instead of trapping")
    func rangesOutsidePayload() {
        let payload = RequestPayload(
            bytes: [0x0A, 0x00],
            resources: [ResourceEntry(resourceBytes: -1..<1, schemaURL: 0..<0, serviceName: nil)],
            scopes: [ScopeEntry(resourceIndex: 0, scopeBytes: 1..<9, schemaURL: 0..<0)],
            experimentID: nil
        )
        let record = SpanRecord(
            traceID: TraceID(high: 1, low: 1), spanID: SpanID(raw: 1), parentSpanID: .none,
            startTimeUnixNano: 0, endTimeUnixNano: 0, flags: 0, kind: 0, statusCode: 0,
            scopeIndex: 0, spanBytes: 0..<3, payload: payload
        )
        #expect(throws: WireError("span bytes 0..<3 outside the 2-byte payload")) { try record.decodeDetail() }
        #expect(throws: WireError("resource bytes -1..<1 outside the 2-byte payload")) { try payload.resourceDetail(at: 0) }
        #expect(throws: WireError("scope bytes 1..<9 outside the 2-byte payload")) { try payload.scopeDetail(at: 0) }
        #expect(throws: WireError("scope index 1 out of range (1 scopes)")) { try payload.scopeDetail(at: 1) }
    }

    @Test("a varint of eleven bytes is an overflow")
    func varintOverflow() {
        let body: [UInt8] = [0x08] + [UInt8](repeating: 0xFF, count: 10) + [0x01]
        #expect(throws: WireError.self) { try OTLPTraceDecoder.decode(body, experimentID: nil) }
        let tenth: [UInt8] = [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x02]
        #expect(throws: WireError("varint overflows 64 bits at byte 1")) { try OTLPTraceDecoder.decode(tenth, experimentID: nil) }
    }

    @Test("groups and undefined wire types are malformed", arguments: [[0x0B, 0x0C], [0x0E], [0x0F], [0x00, 0x00]] as [[UInt8]])
    func badWireTypes(body: [UInt8]) {
        #expect(throws: WireError.self) { try OTLPTraceDecoder.decode(body, experimentID: nil) }
    }

    @Test("a length beyond the body names the place")
    func lengthBeyondBody() {
        let body: [UInt8] = [0x0A, 0x05, 0x12, 0x03, 0x12, 0x09, 0x00]
        #expect(throws: WireError("resource_spans[0]: scope_spans[0]: length 9 at byte 5 exceeds the 1 bytes remaining")) {
            try OTLPTraceDecoder.decode(body, experimentID: nil)
        }
    }
}

@Suite("Nesting limits")
struct NestingLimitTests {
    /// A one-span request whose attribute value nests `levels` AnyValues (arrays of one element).
    static func nested(levels: Int) -> [UInt8] {
        var value = WireWriter()
        value.stringField(Field.AnyValue.stringValue, "leaf")
        for _ in 1..<levels {
            var array = WireWriter()
            array.lengthDelimited(Field.List.values, value.bytes)
            var outer = WireWriter()
            outer.lengthDelimited(Field.AnyValue.arrayValue, array.bytes)
            value = outer
        }
        var pair = WireWriter()
        pair.stringField(Field.KeyValue.key, "deep")
        pair.lengthDelimited(Field.KeyValue.value, value.bytes)
        var span = WireWriter()
        span.bytesField(Field.Span.traceID, [UInt8](repeating: 1, count: 16))
        span.bytesField(Field.Span.spanID, [UInt8](repeating: 2, count: 8))
        span.lengthDelimited(Field.Span.attributes, pair.bytes)
        var scopeSpans = WireWriter()
        scopeSpans.lengthDelimited(Field.ScopeSpans.spans, span.bytes)
        var resourceSpans = WireWriter()
        resourceSpans.lengthDelimited(Field.ResourceSpans.scopeSpans, scopeSpans.bytes)
        var request = WireWriter()
        request.lengthDelimited(Field.Request.resourceSpans, resourceSpans.bytes)
        return request.bytes
    }

    @Test("AnyValues nested up to the limit decode; one level more is malformed")
    func limit() throws {
        let limit = OTLPTraceDecoder.maxAnyValueDepth
        let batch = try OTLPTraceDecoder.decode(Self.nested(levels: limit), experimentID: nil)
        var value = try #require(batch.spans.first).decodeDetail().attribute("deep")
        var depth = 1
        while case .array(let items)? = value {
            value = items.first
            depth += 1
        }
        #expect(depth == limit)
        #expect(value == .string("leaf"))
        #expect(throws: WireError.self) { try OTLPTraceDecoder.decode(Self.nested(levels: limit + 1), experimentID: nil) }
        // swift-protobuf reads both (its own limit is 100 messages): the limit is ours, on purpose.
        _ = try Oracle.parse(Self.nested(levels: limit + 1))
    }

    @Test("20,000 nested levels are refused without exhausting the stack")
    func hostile() {
        #expect(throws: WireError.self) { try OTLPTraceDecoder.decode(Self.nested(levels: 20_000), experimentID: nil) }
        #expect(throws: WireError.self) { try OTLPJSON.jsonFromProtobuf(Self.nested(levels: 20_000)) }
    }
}
