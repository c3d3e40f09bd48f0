import OTLPWire
import StitchCore
import StitchTestSupport
import Testing
import TraceAssembler
import TraceEdge

@Suite struct HandoffQueueTests {
    /// Finished traces of `sizes[i]` spans each (decoded from synthetic single-service requests).
    static func traces(_ sizes: [Int]) throws -> [FinishedTrace] {
        try sizes.enumerated().map { index, size in
            let synthetic = SyntheticTraces(traceCount: 1, spansPerService: size, services: ["a"], seed: UInt64(index + 1))
            let spans = try OTLPTraceDecoder.decode(synthetic.requests(traces: 0..<1)[0].body, experimentID: nil).spans
            return FinishedTrace(traceID: synthetic.traceID(0), spans: spans, reason: .closed, isComplete: true, experimentID: nil)
        }
    }

    @Test("a batch stops at the trace count or before the span budget, and takes at least one trace")
    func batchesAreBoundedByTracesAndSpans() async throws {
        let queue = HandoffQueue(maxBytes: 1 << 30)
        queue.enqueue(try Self.traces([4, 4, 4, 30, 2, 2, 2, 2]))
        queue.finish()
        var sizes: [[Int]] = []
        while let batch = await queue.next(maxTraces: 3, maxSpans: 10) {
            sizes.append(batch.map(\.spans.count))
            queue.completed(batch)
        }
        // 4+4 fit in 10 spans; 30 alone exceeds the budget but is taken on its own; 3 traces at most.
        #expect(sizes == [[4, 4], [4], [30], [2, 2, 2], [2]])
        #expect(queue.occupancy.traces == 0 && queue.occupancy.bytes == 0)
    }
}
