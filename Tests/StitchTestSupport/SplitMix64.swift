/// A small, fast, seedable generator (SplitMix64): the same seed gives the same stream on every
/// machine and toolchain (the standard library's generator is neither seedable nor stable), so that
/// stitch-load's `--seed` gives the same traffic and a failing test seed can be replayed.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    package init(seed: UInt64) {
        state = seed
    }

    /// A generator for one item of a stream (a trace, a chunk), independent of how many items come
    /// before it: trace 7 of seed 1 is the same whether 10 or 10,000 traces are generated.
    package init(seed: UInt64, stream: UInt64, item: UInt64) {
        var mixer = SplitMix64(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        state = mixer.next() ^ (item &* 0xD1B5_4A32_D192_ED03)
        _ = next()
    }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `share` (0…1).
    package mutating func chance(_ share: Double) -> Bool {
        guard share > 0 else { return false }
        guard share < 1 else { return true }
        return Double(next() >> 11) / Double(1 << 53) < share
    }
}
