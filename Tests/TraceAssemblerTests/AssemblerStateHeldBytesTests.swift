import OTLPWire
import TraceEdge
import StitchTestSupport
import Testing
@testable import TraceAssembler

/// `maxBufferedBytes` and `AssemblerStats.bufferedBytes` count what the buffered spans keep alive: the
/// request payloads they point into (issue 10, "The memory bound is what is held").
@Suite struct AssemblerStateHeldBytesTests {
    /// A request as a service sends it: one span of trace `open` whose parent never comes, then a closed
    /// trace `closed` of `closedSpans` spans with `attributeBytes` of attributes each.
    static func request(open: UInt64, closed: UInt64, closedSpans: Int, attributeBytes: Int) throws -> DecodedBatch {
        func span(_ trace: UInt64, _ id: UInt64, parent: UInt64, bytes: Int) -> SpanDetail {
            SpanDetail(
                traceID: TestSpans.traceID(trace), spanID: SpanID(raw: id), parentSpanID: SpanID(raw: parent),
                name: "step", kind: 1, startTimeUnixNano: id, endTimeUnixNano: id + 1,
                attributes: [KeyValue(key: "input", value: .string(String(repeating: "x", count: bytes)))])
        }
        var spans = [span(open, 1_000_000, parent: 999_999, bytes: 16)]
        spans += (1...UInt64(closedSpans)).map { span(closed, $0, parent: $0 == 1 ? 0 : 1, bytes: attributeBytes) }
        let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [ResourceSpansDetail(
            resource: ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string("agent"))]),
            scopeSpans: [ScopeSpansDetail(scope: ScopeDetail(name: "s", version: "1"), spans: spans)])])
        return try OTLPTraceDecoder.decode(body, experimentID: "3")
    }

    /// What the buffered spans keep alive, found without the assembler's accounting: every payload that
    /// a buffered span points into, once. Flushes a copy of the state (a value), so `state` is untouched.
    static func held(_ state: AssemblerState<TestInstant>, now: TestInstant) -> (bytes: Int, spans: [SpanRecord]) {
        var copy = state
        let spans = copy.flush(now: now).flatMap(\.spans)
        var payloads: [ObjectIdentifier: Int] = [:]
        for span in spans { payloads[ObjectIdentifier(span.payload)] = span.payload.bytes.count }
        return (payloads.values.reduce(0, +), spans)
    }

    @Test func aSmallSpanLeftBehindNoLongerHoldsItsRequest() throws {
        var harness = Harness(AssemblerConfiguration(
            idleTimeout: .seconds(2), maxTraceAge: .seconds(30), maxBufferedBytes: 64 << 20))
        let batch = try Self.request(open: 1, closed: 2, closedSpans: 1_000, attributeBytes: 1_000)
        let body = batch.payload.bytes.count
        #expect(body > 1_000_000)
        let original = batch.spans[0]
        harness.receive(batch.spans)
        // Both traces point into the body: it is held once, whole.
        #expect(harness.state.stats.bufferedBytes == body)
        #expect(Self.held(harness.state, now: harness.now).bytes == body)

        // The closed trace goes; the open trace's one span must not keep the other 1,000 alive.
        let closed = harness.tick(at: 2)
        #expect(closed.map(\.traceID) == [TestSpans.traceID(2)])
        #expect(closed.first?.spans.count == 1_000)
        let (heldBytes, remaining) = Self.held(harness.state, now: harness.now)
        #expect(harness.state.stats.bufferedBytes == heldBytes)
        #expect(heldBytes < 1_024, "one span of ~70 bytes with its resource and scope, not the \(body)-byte body")
        #expect(harness.state.stats == AssemblerStats(bufferedTraces: 1, bufferedSpans: 1, bufferedBytes: heldBytes))
        #expect(harness.state.counters.compactedSpans == 1)
        #expect(harness.state.counters.compactedBytes == heldBytes)

        // The span moved reads exactly as it was received.
        let moved = try #require(remaining.first)
        #expect(moved.payload !== batch.payload)
        #expect(moved.spanID == original.spanID && moved.parentSpanID == original.parentSpanID)
        #expect(try moved.decodeDetail() == original.decodeDetail())
        #expect(try moved.payload.resourceDetail(at: moved.resourceIndex) == batch.payload.resourceDetail(at: 0))
        #expect(moved.payload.experimentID == "3")
        #expect(OTLPTraceEncoder.encodeRequest([moved]) == OTLPTraceEncoder.encodeRequest([original]))

        // At its age the open trace is released (not lost), from its compact payload.
        let timedOut = harness.tick(at: 30)
        #expect(timedOut.map(\.reason) == [.timeout])
        #expect(try timedOut.first?.spans.first?.decodeDetail() == original.decodeDetail())
        #expect(harness.state.stats == AssemblerStats())
    }

    @Test func manySuchRequestsStayWithinTheBound() throws {
        let bound = 4 << 20
        var harness = Harness(AssemblerConfiguration(
            idleTimeout: .seconds(2), maxTraceAge: .seconds(300), maxBufferedBytes: bound))
        let requests = 40
        var bodies = 0
        for index in 0..<requests {
            let batch = try Self.request(
                open: UInt64(1_000 + index), closed: UInt64(2_000 + index), closedSpans: 1_000, attributeBytes: 1_000)
            bodies += batch.payload.bytes.count
            harness.now = .seconds(Double(index))
            harness.receive(batch.spans)
            harness.tick(at: Double(index) + 0.5)
            let (heldBytes, _) = Self.held(harness.state, now: harness.now)
            #expect(harness.state.stats.bufferedBytes == heldBytes)
            #expect(heldBytes <= bound)
        }
        #expect(bodies > 10 * bound, "the requests together are far over the bound")
        // Every closed trace was released as closed, none evicted; every open span is still buffered, small.
        harness.tick(at: Double(requests) + 2)
        #expect(!harness.releases.contains { $0.reason == .evicted })
        #expect(harness.releases.filter { $0.reason == .closed }.count == requests)
        let (heldBytes, remaining) = Self.held(harness.state, now: harness.now)
        #expect(remaining.count == requests)
        #expect(harness.state.stats.bufferedBytes == heldBytes)
        #expect(heldBytes < requests * 1_024)
    }

    @Test func spansOfOneRequestLeftInSeveralTracesShareOneCompactPayload() throws {
        // 30 traces of 20 spans in one request; 28 close, 2 stay open.
        let traces = (0..<30).map { trace -> [SpanDetail] in
            (1...20).map { id in
                let isOpen = trace < 2
                return SpanDetail(
                    traceID: TestSpans.traceID(UInt64(100 + trace)), spanID: SpanID(raw: UInt64(id)),
                    parentSpanID: SpanID(raw: id == 1 ? (isOpen ? 77 : 0) : 1),
                    name: "s", kind: 1, startTimeUnixNano: 1, endTimeUnixNano: 2,
                    attributes: [KeyValue(key: "a", value: .string(String(repeating: "y", count: 500)))])
            }
        }
        let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [ResourceSpansDetail(
            resource: ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string("svc"))]),
            scopeSpans: [ScopeSpansDetail(scope: nil, spans: traces.flatMap { $0 })])])
        let batch = try OTLPTraceDecoder.decode(body, experimentID: nil)
        var harness = Harness(AssemblerConfiguration(idleTimeout: .seconds(2), maxTraceAge: .seconds(30)))
        harness.receive(batch.spans)
        #expect(harness.state.stats.bufferedBytes == body.count)
        #expect(harness.tick(at: 2).count == 28)
        let (heldBytes, remaining) = Self.held(harness.state, now: harness.now)
        #expect(remaining.count == 40)
        #expect(Set(remaining.map { ObjectIdentifier($0.payload) }).count == 1)
        #expect(harness.state.stats.bufferedBytes == heldBytes)
        #expect(heldBytes < body.count / 10)
        for (original, moved) in zip(batch.spans.prefix(40), remaining.sorted { ($0.traceID, $0.spanID) < ($1.traceID, $1.spanID) }) {
            #expect(try original.decodeDetail() == moved.decodeDetail())
        }
        // One of the two is released: the compact payload is not copied again for a share of one half.
        harness.receive([TestSpans.span(trace: 100, id: 77)])
        #expect(harness.tick(at: 4.5).count == 1)
        #expect(harness.state.counters.compactedSpans == 40)
        #expect(harness.state.stats.bufferedBytes == Self.held(harness.state, now: harness.now).bytes)
    }

    @Test func evictionForBytesComesAfterMovingSpansOut() throws {
        // Requests of ~300 KB under a 1 MB bound: each closed trace that goes as a too_large part leaves
        // its open span alone in its request, which is moved out before anything is evicted.
        var harness = Harness(AssemblerConfiguration(
            idleTimeout: .seconds(2), maxTraceAge: .seconds(30), maxSpansPerTrace: 300, maxBufferedBytes: 1_000_000))
        for index in 0..<10 {
            let batch = try Self.request(
                open: UInt64(1_000 + index), closed: UInt64(2_000 + index), closedSpans: 301, attributeBytes: 1_000)
            harness.receive(batch.spans)
            #expect(harness.state.stats.bufferedBytes == Self.held(harness.state, now: harness.now).bytes)
            #expect(harness.state.stats.bufferedBytes <= 1_000_000)
        }
        // Each request: one part of 300 spans, the 301st span alone in its trace (a few KB) and the open span.
        #expect(!harness.releases.contains { $0.reason == .evicted })
        #expect(harness.releases.filter { $0.reason == .tooLarge }.count == 10)
        #expect(harness.state.stats.bufferedTraces == 20)
    }

    /// Random requests of real bytes (several traces each, spans of very different sizes, parts, evictions,
    /// timeouts): after every call the counted bytes are what the buffered spans keep alive, within the
    /// bound, and every span released reads as it was received (its name carries its serial).
    @Test(arguments: [1, 7, 99, 2024] as [UInt64])
    func countedBytesAreHeldBytesUnderRandomTraffic(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let configuration = AssemblerConfiguration(
            idleTimeout: .seconds(2), maxTraceAge: .seconds(10), maxSpansPerTrace: 8,
            maxTraces: 30, maxBufferedBytes: 200_000, lateWindow: .seconds(20))
        var state = AssemblerState<TestInstant>(configuration: configuration)
        var now = TestInstant.zero
        var serial: UInt64 = 0
        var released = 0
        var accepted = 0
        func check(_ releases: [FinishedTrace]) throws {
            for trace in releases {
                for span in trace.spans {
                    #expect(try span.decodeDetail().name == "serial-\(span.startTimeUnixNano)")
                }
                released += trace.spans.count
            }
            #expect(state.stats.bufferedBytes == Self.held(state, now: now).bytes)
            #expect(state.stats.bufferedBytes <= configuration.maxBufferedBytes)
        }
        for _ in 0..<400 {
            if random.next() % 10 < 7 {
                let spans = (0..<Int(1 + random.next() % 12)).map { _ -> SpanDetail in
                    serial += 1
                    let id = 1 + random.next() % 12
                    let big = random.next() % 8 == 0
                    return SpanDetail(
                        traceID: TestSpans.traceID(1 + random.next() % 25), spanID: SpanID(raw: id),
                        parentSpanID: SpanID(raw: id == 1 ? 0 : 1 + random.next() % (id - 1)),
                        name: "serial-\(serial)", kind: 1, startTimeUnixNano: serial, endTimeUnixNano: serial + 1,
                        attributes: [KeyValue(key: "a", value: .string(String(repeating: "z", count: big ? 30_000 : 40)))])
                }
                let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [ResourceSpansDetail(
                    resource: ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string("svc"))]),
                    scopeSpans: [ScopeSpansDetail(scope: nil, spans: spans)])])
                let (summary, releases) = state.receive(try OTLPTraceDecoder.decode(body, experimentID: nil).spans, now: now)
                accepted += summary.accepted + summary.late
                try check(releases)
            } else {
                now = now.advanced(by: .milliseconds(Int64(random.next() % 3_000)))
                try check(state.tick(now: now))
            }
        }
        try check(state.flush(now: now))
        #expect(released == accepted)
        #expect(state.stats == AssemblerStats())
    }
}
