import DequeModule
import OTLPWire

/// The ids of recently released traces, so that spans arriving for them are recognised as late
/// fragments instead of starting a second, competing trace (DESIGN.md, "late_window").
///
/// Bounded twice: ids expire `lateWindow` after their release (`expire(now:)`), and at most `capacity`
/// ids are held, the oldest being forgotten first (counted in `forgottenEarly`).
struct ReleasedTraceMemory {
    struct Entry {
        /// Time since the state's origin.
        var releasedAt: Duration
        /// The experiment the trace was released with, given to its late fragments.
        var experimentID: String?
    }

    private(set) var entries: [TraceID: Entry] = [:]
    /// Release order. Exactly one element per key of `entries`: an id is only remembered when it is
    /// not remembered already (a buffered trace's id is never in the memory).
    private var order: Deque<TraceID> = []
    let capacity: Int
    private(set) var forgottenEarly = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { entries.count }

    subscript(traceID: TraceID) -> Entry? { entries[traceID] }

    mutating func remember(_ traceID: TraceID, experimentID: String?, at now: Duration) {
        // Already remembered: keep the first release time, so that `order` stays sorted by it.
        guard entries[traceID] == nil else { return }
        entries[traceID] = Entry(releasedAt: now, experimentID: experimentID)
        order.append(traceID)
        while order.count > capacity, let oldest = order.popFirst() {
            entries.removeValue(forKey: oldest)
            forgottenEarly += 1
        }
    }

    /// Forgets every id released at least `window` before `now`.
    mutating func expire(now: Duration, window: Duration) {
        while let oldest = order.first {
            if let entry = entries[oldest], now < entry.releasedAt + window { return }
            order.removeFirst()
            entries.removeValue(forKey: oldest)
        }
    }
}
