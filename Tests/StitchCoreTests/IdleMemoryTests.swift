@testable import StitchCore
import Testing

@Suite struct IdleMemoryTests {
    @Test func releasesOnceAfterAWholeQuietIntervalWithEverythingWritten() {
        // (activity counts at one look, everything written?, whether to release then)
        let looks: [([Int], Bool, Bool)] = [
            ([0, 0], true, false), // the first look has nothing to compare with
            ([0, 0], true, true), // quiet for a whole interval
            ([0, 0], true, false), // only once per quiet spell
            ([0, 0], true, false),
            ([100, 5], true, false), // traffic came and was written within the interval
            ([100, 5], true, true),
            ([180, 9], false, false), // still buffered, queued or being written: wait, however long
            ([180, 9], false, false),
            ([180, 9], true, true),
            ([250, 9], true, false), // spans arrived that no destination takes: still traffic
            ([250, 9], true, true),
            ([250, 9, 3], true, false), // every count unchanged
            ([250, 9, 4], true, false),
            ([250, 9, 4], false, false),
            ([250, 9, 4], true, true),
        ]
        var state = IdleMemoryState()
        for (index, (counts, drained, expected)) in looks.enumerated() {
            let released = state.observe(counts: counts, drained: drained)
            #expect(released == expected, "look \(index)")
        }
    }
}
