import OTLPWire
import StitchTestSupport
import Testing
@testable import TraceAssembler
import TraceEdge

@Suite struct SpanIDSetTests {
    /// Behaves as a `Set` through inserts, duplicates and removals on both sides of the linear limit.
    @Test(arguments: [1, SpanIDSet.linearLimit - 1, SpanIDSet.linearLimit, SpanIDSet.linearLimit + 1, 3 * SpanIDSet.linearLimit])
    func matchesASetOfTheSameIDs(count: Int) {
        var generator = SplitMix64(seed: UInt64(count))
        var mine = SpanIDSet()
        var reference = Set<UInt64>()
        var ids: [UInt64] = []
        for _ in 0..<count {
            // Small ids collide often: duplicates are part of the traffic.
            let raw = generator.next() % UInt64(2 * count) + 1
            ids.append(raw)
            let inserted = mine.insert(SpanID(raw: raw))
            #expect(inserted == reference.insert(raw).inserted)
            #expect(mine.count == reference.count)
        }
        for raw in ids.shuffled(using: &generator).prefix(count / 2) {
            mine.remove(SpanID(raw: raw))
            reference.remove(raw)
            #expect(mine.count == reference.count)
        }
        for raw in 0...UInt64(2 * count + 1) {
            #expect(mine.contains(SpanID(raw: raw)) == reference.contains(raw), "id \(raw)")
        }
        #expect(mine.isEmpty == reference.isEmpty)
        // Everything removed: empty again, and ids can come back.
        for raw in ids { mine.remove(SpanID(raw: raw)) }
        #expect(mine.isEmpty)
        let first = mine.insert(SpanID(raw: ids[0]))
        let again = mine.insert(SpanID(raw: ids[0]))
        #expect(first && !again)
    }
}
