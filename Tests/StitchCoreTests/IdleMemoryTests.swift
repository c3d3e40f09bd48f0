@testable import StitchCore
import Testing

@Suite struct IdleMemoryTests {
    @Test func releasesOnceAfterAWholeQuietIntervalWithEverythingWritten() {
        // (each queue's activity at one look, whether to release then)
        let looks: [([(enqueued: Int, drained: Bool)], Bool)] = [
            ([(0, true)], false), // the first look has nothing to compare with
            ([(0, true)], true), // quiet for a whole interval
            ([(0, true)], false), // only once per quiet spell
            ([(0, true)], false),
            ([(5, true)], false), // traffic came and was written within the interval
            ([(5, true)], true),
            ([(9, false)], false), // still queued or being written: wait, however long
            ([(9, false)], false),
            ([(9, true)], true),
            ([(9, true), (3, true)], false), // every destination drained and unchanged
            ([(9, true), (4, true)], false),
            ([(9, true), (4, false)], false),
            ([(9, true), (4, true)], true),
        ]
        var state = IdleMemoryState()
        for (index, (activity, expected)) in looks.enumerated() {
            let released = state.observe(activity)
            #expect(released == expected, "look \(index)")
        }
    }
}
