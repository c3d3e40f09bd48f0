import OTLPWire
import Testing
@testable import TraceAssembler
import TraceEdge

/// Closure, idle release and `maxTraceAge` (DESIGN.md, "When is a trace finished?").
@Suite struct AssemblerStateCompletionTests {
    let configuration = AssemblerConfiguration(idleTimeout: .seconds(2), maxTraceAge: .seconds(30))

    @Test func childrenBeforeRootAreReleasedClosedOnlyAfterIdle() {
        var harness = Harness(configuration)
        harness.receive([
            TestSpans.span(trace: 1, id: 3, parent: 2),
            TestSpans.span(trace: 1, id: 2, parent: 1),
        ])
        // Without its root the trace is open: idleness alone never releases it.
        #expect(harness.tick(at: 10).isEmpty)
        #expect(harness.state.stats == AssemblerStats(bufferedTraces: 1, bufferedSpans: 2, bufferedBytes: 200))

        harness.now = .seconds(10)
        harness.receive([TestSpans.span(trace: 1, id: 1)])
        #expect(harness.tick(at: 11.999).isEmpty)
        let released = harness.tick(at: 12)
        #expect(released.count == 1)
        #expect(released.first?.reason == .closed)
        #expect(released.first?.isComplete == true)
        #expect(released.first?.traceID == TestSpans.traceID(1))
        #expect(released.first?.spanIDs == [3, 2, 1], "arrival order")
        #expect(harness.state.stats == AssemblerStats())
    }

    @Test func remoteParentJoinsTwoServicesIntoOneTrace() {
        var harness = Harness(configuration)
        let agent = TestSpans.payload(service: "agent")
        let tool = TestSpans.payload(service: "tool")
        // The tool's server span names the agent's client span as its remote parent (flags 0x300).
        harness.receive([
            TestSpans.span(trace: 7, id: 30, parent: 20, flags: 0x300, payload: tool),
            TestSpans.span(trace: 7, id: 40, parent: 30, flags: 0x100, payload: tool),
        ])
        #expect(harness.tick(at: 3).isEmpty, "the tool's spans alone miss their parent")

        harness.now = .seconds(3)
        harness.receive([
            TestSpans.span(trace: 7, id: 10, payload: agent),
            TestSpans.span(trace: 7, id: 20, parent: 10, payload: agent),
        ])
        let released = harness.tick(at: 5)
        #expect(released.count == 1)
        let trace = try! #require(released.first)
        #expect(trace.reason == .closed)
        #expect(trace.isComplete)
        #expect(trace.spanIDs == [30, 40, 10, 20])
        #expect(trace.spans.map(\.serviceName) == ["tool", "tool", "agent", "agent"])
    }

    @Test func traceWithoutRootIsReleasedIncompleteAtMaxTraceAge() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 2, parent: 1), TestSpans.span(trace: 1, id: 3, parent: 2)])
        #expect(harness.tick(at: 29.999).isEmpty)
        let released = harness.tick(at: 30)
        #expect(released.count == 1)
        #expect(released.first?.reason == .timeout)
        #expect(released.first?.isComplete == false)
        #expect(released.first?.spanIDs == [2, 3])
    }

    @Test func traceMissingMiddleParentStaysOpenUntilTimeout() {
        var harness = Harness(configuration)
        // Root 1, grandchild 3 whose parent 2 never arrives.
        harness.receive([TestSpans.span(trace: 1, id: 1), TestSpans.span(trace: 1, id: 3, parent: 2)])
        #expect(harness.tick(at: 5).isEmpty)
        #expect(harness.tick(at: 20).isEmpty)
        #expect(harness.state.stats.bufferedTraces == 1)
        let released = harness.tick(at: 30)
        #expect(released.map(\.reason) == [.timeout])
        #expect(released.first?.isComplete == false)
    }

    @Test func missingParentArrivingClosesTrace() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 1), TestSpans.span(trace: 1, id: 3, parent: 2)])
        harness.now = .seconds(1)
        harness.receive([TestSpans.span(trace: 1, id: 2, parent: 1)])
        #expect(harness.tick(at: 2.999).isEmpty)
        #expect(harness.tick(at: 3).map(\.reason) == [.closed])
    }

    @Test func closedTraceReopensWhenSpanNamesUnknownParent() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 1)])
        harness.now = .seconds(1)
        harness.receive([TestSpans.span(trace: 1, id: 5, parent: 4)])
        #expect(harness.tick(at: 10).isEmpty, "span 4 is missing again")
        let released = harness.tick(at: 30)
        #expect(released.map(\.reason) == [.timeout])
        #expect(released.first?.isComplete == false)
    }

    @Test func idleTimerRestartsWithEachNewSpan() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 1)])
        harness.now = .seconds(1.5)
        harness.receive([TestSpans.span(trace: 1, id: 2, parent: 1)])
        #expect(harness.tick(at: 2).isEmpty, "quiet for only 0.5 s")
        #expect(harness.tick(at: 3.499).isEmpty)
        let released = harness.tick(at: 3.5)
        #expect(released.map(\.spanIDs) == [[1, 2]])
    }

    @Test func duplicateSpansDoNotRestartIdleTimer() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 1)])
        harness.now = .seconds(1.5)
        #expect(harness.receive([TestSpans.span(trace: 1, id: 1)]).summary.duplicates == 1)
        #expect(harness.tick(at: 2).map(\.reason) == [.closed])
    }

    @Test func closedTraceThatNeverGoesQuietIsReleasedAtMaxTraceAge() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 1)])
        for second in 1..<30 {
            harness.now = .seconds(Double(second))
            harness.receive([TestSpans.span(trace: 1, id: UInt64(second + 1), parent: 1)])
            #expect(harness.tick(at: Double(second) + 0.5).isEmpty)
        }
        let released = harness.tick(at: 30)
        #expect(released.count == 1)
        #expect(released.first?.reason == .timeout)
        #expect(released.first?.isComplete == true, "closed when the age limit hit")
        #expect(released.first?.spans.count == 30)
    }

    @Test func experimentComesFromRootRequestThenFirstNamingRequest() {
        var harness = Harness(configuration)
        let named5 = TestSpans.payload(experimentID: "5")
        let named7 = TestSpans.payload(experimentID: "7")
        let unnamed = TestSpans.payload()
        // Trace 1: a child's request names 5 first, the root's request names 7 → 7.
        harness.receive([TestSpans.span(trace: 1, id: 2, parent: 1, payload: named5)])
        harness.receive([TestSpans.span(trace: 1, id: 1, payload: named7)])
        // Trace 2: the root's request names none → the first request that named one (9, not 5).
        harness.receive([TestSpans.span(trace: 2, id: 2, parent: 1, payload: unnamed)])
        harness.receive([TestSpans.span(trace: 2, id: 3, parent: 1, payload: TestSpans.payload(experimentID: "9"))])
        harness.receive([TestSpans.span(trace: 2, id: 4, parent: 1, payload: named5)])
        harness.receive([TestSpans.span(trace: 2, id: 1, payload: unnamed)])
        // Trace 3: nobody names one.
        harness.receive([TestSpans.span(trace: 3, id: 1, payload: unnamed)])

        let released = harness.tick(at: 2)
        let byTrace = Dictionary(uniqueKeysWithValues: released.map { ($0.traceID.low, $0.experimentID) })
        #expect(byTrace.count == 3)
        #expect(byTrace[1] == "7")
        #expect(byTrace[2] == "9")
        #expect(byTrace[3] == .some(nil))
    }

    /// The root of one request: MLflow's AI Gateway trace, whose root carries `mlflow.experimentId`
    /// (JSON-encoded, as MLflow writes attribute values) and whose exporter names another
    /// experiment in its header.
    static func gatewayRequest(experimentAttribute: String?, header: String?, start: UInt64) throws -> DecodedBatch {
        let attributes = experimentAttribute.map { [KeyValue(key: "mlflow.experimentId", value: .string($0))] } ?? []
        let span = SpanDetail(traceID: TestSpans.traceID(40), spanID: SpanID(raw: 1), parentSpanID: .none, name: "gateway/chat",
                              kind: 1, startTimeUnixNano: start, endTimeUnixNano: start + 10, attributes: attributes)
        let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [ResourceSpansDetail(
            resource: ResourceDetail(attributes: []), scopeSpans: [ScopeSpansDetail(scope: ScopeDetail(name: "s", version: "1"), spans: [span])])])
        return try OTLPTraceDecoder.decode(body, experimentID: header)
    }

    @Test func aRootsExperimentAttributeBeatsEveryRequestsHeader() throws {
        for (attribute, header, expected) in [
            ("\"1\"", "5", "1"),        // MLflow's JSON-encoded value, against the process-wide header
            ("23", nil, "23"),          // a bare value
            ("\"ml-7\"", "5", "5"),     // not an MLflow experiment id: the header applies
            (nil, "5", "5"),
        ] as [(String?, String?, String)] {
            var harness = Harness(configuration)
            harness.receive([TestSpans.span(trace: 40, id: 2, parent: 1, payload: TestSpans.payload(experimentID: "9"))])
            harness.receive(try Self.gatewayRequest(experimentAttribute: attribute, header: header, start: 50).spans)
            let released = harness.tick(at: 2)
            #expect(released.map(\.experimentID) == [expected], "attribute \(attribute ?? "none"), header \(header ?? "none")")
        }
    }

    /// MLflow's AI Gateway builds its `gateway/<endpoint>` span after the provider call: the child
    /// arrives first, with an earlier start, in a request of its own.
    @Test func aParentThatStartsAfterItsChildrenClosesTheTraceAsAnyParent() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 41, id: 1)])                             // the agent's root
        harness.receive([TestSpans.span(trace: 41, id: 3, parent: 2, serial: 100)]) // the provider call
        #expect(harness.tick(at: 0.5).isEmpty, "open while its parent is missing")
        harness.now = .seconds(0.6)
        harness.receive([TestSpans.span(trace: 41, id: 2, parent: 1, serial: 300)]) // the gateway span, later
        let released = harness.tick(at: 3)
        #expect(released.count == 1)
        #expect(released.first?.reason == .closed)
        #expect(released.first?.isComplete == true)
        #expect(released.first?.spanIDs.sorted() == [1, 2, 3])
    }

    @Test func flushReleasesEverythingAsShutdownOldestFirst() {
        var harness = Harness(configuration)
        harness.receive([TestSpans.span(trace: 1, id: 2, parent: 1)])
        harness.now = .seconds(1)
        harness.receive([TestSpans.span(trace: 2, id: 1)])
        harness.now = .seconds(1.5)
        harness.receive([TestSpans.span(trace: 3, id: 1), TestSpans.span(trace: 1, id: 3, parent: 2)])

        let released = harness.flush()
        #expect(released.map(\.traceID.low) == [1, 2, 3])
        #expect(released.allSatisfy { $0.reason == .shutdown })
        #expect(released.map(\.isComplete) == [false, true, true])
        #expect(released.first?.spanIDs == [2, 3])
        #expect(harness.state.stats == AssemblerStats())
        #expect(harness.tick(at: 100).isEmpty, "timers of flushed traces are gone")
        #expect(harness.state.queuedTimers.idle == 0)
        #expect(harness.state.queuedTimers.age == 0)
    }
}
