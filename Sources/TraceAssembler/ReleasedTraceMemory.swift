import DequeModule
import OTLPWire

/// The ids of recently released traces, so that spans arriving for them are recognised as late
/// fragments instead of starting a second, competing trace (DESIGN.md, "late_window").
///
/// Bounded twice: ids expire `lateWindow` after their release (`expire(now:)`), and at most `capacity`
/// ids are held, the oldest being forgotten first (counted in `forgottenEarly`).
///
/// The ids live in generations of at most `generationSize` ids each (a sixteenth of the capacity),
/// not in one dictionary: a dictionary doubles its table all at once, and at the default capacity
/// (400,000 ids) the last doublings held the assembler for 16, 28, ~60 and ~120 ms while requests
/// waited (measured). A generation's table stops growing at its size, so a doubling costs at most a
/// sixteenth of that; a lookup asks each generation, newest first.
struct ReleasedTraceMemory {
    struct Entry {
        /// Time since the state's origin.
        var releasedAt: Duration
        /// The experiment the trace was released with, given to its late fragments.
        var experimentID: String?
    }

    private struct Generation {
        var entries: [TraceID: Entry] = [:]
        /// Ids ever added to this generation (entries leave it as they expire or are forgotten).
        var added = 0
    }

    /// Oldest first; the last one takes new ids until `generationSize` were added to it.
    private var generations: Deque<Generation> = []
    /// Release order, with the generation (counted from `firstGeneration`) that holds each id.
    /// Exactly one element per remembered id: an id is only remembered when it is not remembered
    /// already (a buffered trace's id is never in the memory).
    private var order: Deque<(traceID: TraceID, generation: Int)> = []
    /// The number of the generation at `generations.first`.
    private var firstGeneration = 0
    let capacity: Int
    let generationSize: Int
    private(set) var forgottenEarly = 0
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        generationSize = max(1, self.capacity / 16)
    }

    subscript(traceID: TraceID) -> Entry? {
        for generation in generations.reversed() {
            if let entry = generation.entries[traceID] { return entry }
        }
        return nil
    }

    mutating func remember(_ traceID: TraceID, experimentID: String?, at now: Duration) {
        // Already remembered: keep the first release time, so that `order` stays sorted by it.
        guard self[traceID] == nil else { return }
        if generations.last.map({ $0.added >= generationSize }) ?? true {
            generations.append(Generation())
        }
        generations[generations.count - 1].entries[traceID] = Entry(releasedAt: now, experimentID: experimentID)
        generations[generations.count - 1].added += 1
        order.append((traceID, firstGeneration + generations.count - 1))
        count += 1
        while count > capacity {
            forgetOldest()
            forgottenEarly += 1
        }
    }

    /// Forgets every id released at least `window` before `now`.
    mutating func expire(now: Duration, window: Duration) {
        while let oldest = order.first {
            let generation = oldest.generation - firstGeneration
            if let entry = generations[generation].entries[oldest.traceID], now < entry.releasedAt + window { return }
            forgetOldest()
        }
    }

    private mutating func forgetOldest() {
        guard let oldest = order.popFirst() else { return }
        generations[oldest.generation - firstGeneration].entries.removeValue(forKey: oldest.traceID)
        count -= 1
        // Generations empty out in order (ids are forgotten oldest first); the newest one stays.
        while generations.count > 1, let first = generations.first, first.entries.isEmpty {
            generations.removeFirst()
            firstGeneration += 1
        }
    }
}
