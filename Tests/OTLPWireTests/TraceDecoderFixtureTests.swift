import Testing
@testable import OTLPWire

@Suite("TraceDecoder on captured requests")
struct TraceDecoderFixtureTests {
    @Test("the fixture directory holds the captured bodies")
    func fixturesPresent() {
        #expect(Fixtures.bodyNames.count >= 11, "no fixtures under \(Fixtures.directory.path)")
        #expect(Fixtures.bodyNames.contains { $0.hasSuffix(".pb.gz") })
    }

    @Test("every span of every fixture matches its text dump", arguments: Fixtures.bodyNames)
    func matchesTextDump(name: String) throws {
        let body = try Fixtures.body(name)
        let expected = TextDump.spans(try Fixtures.textDump(name))
        #expect(!expected.isEmpty)
        let batch = try OTLPTraceDecoder.decode(body, experimentID: "7")
        #expect(batch.rejectedSpans == 0)
        #expect(batch.firstRejection == nil)
        #expect(batch.payload.experimentID == "7")
        #expect(batch.spans.count == expected.count)
        for (record, want) in zip(batch.spans, expected) {
            #expect(record.traceID.bytes == want.traceID)
            #expect(record.spanID.bytes == want.spanID)
            if want.parentSpanID.isEmpty {
                #expect(record.isRoot)
            } else {
                #expect(record.parentSpanID.bytes == want.parentSpanID)
            }
            #expect(record.kind == want.kind)
            #expect(record.startTimeUnixNano == want.startTimeUnixNano)
            #expect(record.endTimeUnixNano == want.endTimeUnixNano)
            #expect(record.flags == want.flags)
            #expect(record.statusCode == want.statusCode)
            #expect(record.serviceName == want.serviceName)
            let detail = try record.decodeDetail()
            #expect(detail.name == want.name)
            #expect(detail.traceID == record.traceID)
            #expect(detail.spanID == record.spanID)
            #expect(detail.parentSpanID == record.parentSpanID)
            #expect(detail.kind == record.kind)
        }
    }

    @Test("every resource and scope of every fixture decodes", arguments: Fixtures.bodyNames)
    func resourcesAndScopes(name: String) throws {
        let batch = try OTLPTraceDecoder.decode(try Fixtures.body(name), experimentID: nil)
        let dump = try Fixtures.textDump(name)
        #expect(batch.payload.resources.count == dump.components(separatedBy: "resource_spans {").count - 1)
        #expect(batch.payload.scopes.count == dump.components(separatedBy: "scope_spans {").count - 1)
        for index in batch.payload.resources.indices {
            let resource = try batch.payload.resourceDetail(at: index)
            let service = resource.attributes.last { $0.key == "service.name" }?.value
            if let serviceName = batch.payload.resources[index].serviceName {
                #expect(service == .string(serviceName))
            } else {
                #expect(service == nil)
            }
            #expect(resource.attributes.contains { $0.key == "telemetry.sdk.language" && $0.value == .string("python") })
        }
        for index in batch.payload.scopes.indices {
            _ = try batch.payload.scopeDetail(at: index)
        }
    }

    @Test("fixture 01: service-a, scope name, attributes")
    func fixture01Details() throws {
        let batch = try OTLPTraceDecoder.decode(try Fixtures.body("01-otelsdk-serviceA-3spans.pb"), experimentID: nil)
        #expect(batch.spans.map(\.serviceName) == ["service-a", "service-a", "service-a"])
        #expect(batch.spans.allSatisfy { $0.traceID.hex == "3bb6c5d66706eddb63619b9d8070258a" })
        #expect(batch.spans.filter(\.isRoot).count == 1)
        let names = try batch.spans.map { try $0.decodeDetail().name }
        #expect(Set(names) == ["A-root", "A-call-B", "A-postprocess"])
        #expect(try batch.payload.scopeDetail(at: 0).name == "anchor.service-a")
    }

    @Test("fixture 08: typed AnyValues (int, kvlist)")
    func fixture08TypedValues() throws {
        let batch = try OTLPTraceDecoder.decode(
            try Fixtures.body("08-mlflow-client-to-tracking-server-v1traces-client-root.pb"), experimentID: nil
        )
        let detail = try #require(batch.spans.first).decodeDetail()
        #expect(detail.attribute("mlflow.spanType") == .string("CHAIN"))
        #expect(detail.attribute("mlflow.spanInputs") == .kvlist([KeyValue(key: "question", value: .string("life?"))]))
        guard case .kvlist(let outputs) = detail.attribute("mlflow.spanOutputs") else {
            Issue.record("mlflow.spanOutputs is not a kvlist")
            return
        }
        #expect(outputs.first == KeyValue(key: "answer", value: .int(42)))
    }

    @Test("fixture 03 is 01 and 02 in one request")
    func fixture03IsConcatenation() throws {
        let joined = try OTLPTraceDecoder.decode(try Fixtures.body("03-assembled-A+B-single-request.pb"), experimentID: nil)
        let first = try OTLPTraceDecoder.decode(try Fixtures.body("01-otelsdk-serviceA-3spans.pb"), experimentID: nil)
        let second = try OTLPTraceDecoder.decode(try Fixtures.body("02-otelsdk-serviceB-2spans-remote-parent.pb"), experimentID: nil)
        #expect(joined.spans.map(\.spanID) == (first.spans + second.spans).map(\.spanID))
        #expect(joined.spans.map(\.serviceName) == (first.spans + second.spans).map(\.serviceName))
        #expect(joined.spans.map(\.resourceIndex) == [0, 0, 0, 1, 1])
    }
}
