import DequeModule
import OTLPWire
import StitchTestSupport
import Testing
@testable import TraceAssembler
import TraceEdge

@Suite struct ReleasedTraceMemoryTests {
    /// The plain model: one dictionary and the release order.
    struct Reference {
        var entries: [TraceID: Duration] = [:]
        var order: Deque<TraceID> = []
        let capacity: Int
        var forgottenEarly = 0

        mutating func remember(_ id: TraceID, at now: Duration) {
            guard entries[id] == nil else { return }
            entries[id] = now
            order.append(id)
            while order.count > capacity, let oldest = order.popFirst() {
                entries[oldest] = nil
                forgottenEarly += 1
            }
        }

        mutating func expire(now: Duration, window: Duration) {
            while let oldest = order.first, let at = entries[oldest], now >= at + window {
                order.removeFirst()
                entries[oldest] = nil
            }
        }
    }

    /// Remembering, re-remembering, expiring and overflowing in random order: the generations answer
    /// every lookup, count and forgotten-early figure as one dictionary would.
    @Test(arguments: [1, 7, 16, 100, 1000])
    func generationsBehaveAsOneDictionary(capacity: Int) {
        var generator = SplitMix64(seed: UInt64(capacity))
        var memory = ReleasedTraceMemory(capacity: capacity)
        var reference = Reference(capacity: capacity)
        let window = Duration.seconds(50)
        var now = Duration.zero
        let ids = (0..<UInt64(3 * capacity + 10)).map { TraceID(high: 0, low: $0) }
        for step in 0..<(20 * capacity + 200) {
            now += .milliseconds(Int64(generator.next() % 200))
            let id = ids[Int(generator.next() % UInt64(ids.count))]
            if generator.next() % 4 == 0 {
                memory.expire(now: now, window: window)
                reference.expire(now: now, window: window)
            } else {
                memory.remember(id, experimentID: "\(step)", at: now)
                reference.remember(id, at: now)
            }
            #expect(memory.count == reference.order.count, "step \(step)")
            #expect((memory[id] != nil) == (reference.entries[id] != nil), "step \(step)")
        }
        for id in ids {
            #expect(memory[id]?.releasedAt == reference.entries[id], "id \(id.low)")
        }
        #expect(memory.forgottenEarly == reference.forgottenEarly)
        // Everything expires: empty again, and ids are remembered afresh.
        memory.expire(now: now + window, window: window)
        #expect(memory.count == 0)
        memory.remember(ids[0], experimentID: nil, at: now + window)
        #expect(memory[ids[0]] != nil && memory.count == 1)
    }

    @Test func keepsTheFirstReleaseOfAnIdAndItsExperiment() {
        var memory = ReleasedTraceMemory(capacity: 64)
        let id = TraceID(high: 1, low: 2)
        memory.remember(id, experimentID: "3", at: .seconds(1))
        memory.remember(id, experimentID: "4", at: .seconds(2))
        #expect(memory[id]?.releasedAt == .seconds(1))
        #expect(memory[id]?.experimentID == "3")
        #expect(memory.count == 1)
    }
}
