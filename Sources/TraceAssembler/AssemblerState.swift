import OTLPWire
import TraceEdge

/// The assembler's decisions as a value: which spans are buffered, and when each trace is released
/// (DESIGN.md, "When is a trace finished?"). No clock, no I/O: the caller says what time it is.
///
/// The rules, with the limits from `AssemblerConfiguration`:
/// - A trace is *closed* when it has a root span and every span's parent is in the trace. This is
///   tracked per span (span ids present, parent ids still missing), never by rescanning.
/// - A closed trace is released `idleTimeout` after its last span arrived (`closed`, complete).
/// - Any trace is released `maxTraceAge` after its first span (`timeout`, complete if closed then),
///   including a closed trace that never goes quiet.
/// - A span arriving for a trace that already buffers `maxSpansPerTrace` spans first releases those
///   as a part (`too_large`, never complete); the trace stays open with its span ids and closure facts,
///   so the buffer never holds more than `maxSpansPerTrace` spans of one trace and the final release
///   always has at least one span. The final release gets the normal reason, and its `isComplete`
///   describes the whole trace (all parts), because destinations merge the parts into one trace.
/// - After each `receive`, while more than `maxTraces` traces or more than `maxBufferedBytes` bytes are
///   buffered, the trace with the oldest first span is released (`evicted`, complete if closed). The bytes
///   are those the buffered spans keep alive: each request payload they point into, whole, once.
/// - When a release leaves a payload's buffered spans a small share of it (at most half, beyond a 4 KiB
///   allowance for its resource and scope), those spans are moved into a compact payload of their own at
///   the end of the call (`receive`: before evicting for bytes), so that the rest of the request is freed.
///   Their records keep every field; only `payload`, `scopeIndex` and `spanBytes` change.
/// - Released trace ids are remembered for `lateWindow` (and at most `rememberedTraceLimit` of them).
///   Spans for a remembered id are late: they are released in the same `receive` call, one
///   `late` fragment per trace id, never complete (the destination recomputes completeness when it
///   merges the fragment), carrying the experiment the trace was released with.
/// - A span whose trace already holds its span id is a duplicate and is dropped (the first one wins),
///   also across released parts and within one call's late fragment.
///
/// `now` must not go backwards between calls (use a monotonic clock): the deadline queues rely on it.
/// Timers only fire in `tick(now:)`, so `receive` never releases for age or idleness and a trace id
/// stays remembered until the first tick after its `lateWindow`.
///
/// Cost: `receive` is O(spans) with one dictionary lookup and one or two set operations per span;
/// `tick` only looks at timers that are due. Deadlines sit in two FIFO queues whose entries are
/// invalidated lazily (a stamp that no longer matches the trace's), because every deadline of one
/// kind is "now + a fixed duration" and so the queues stay sorted by appending.
package struct AssemblerState<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    private var core: AssemblerCore
    /// The first instant given; the core counts time from here.
    private var origin: Instant?

    package init(configuration: AssemblerConfiguration) {
        core = AssemblerCore(configuration: configuration)
    }

    package var configuration: AssemblerConfiguration { core.configuration }

    /// Buffer occupancy now.
    package var stats: AssemblerStats { core.stats }

    /// Running totals, for metrics.
    package var counters: AssemblerCounters { core.counters }

    /// How many released trace ids are remembered for late spans.
    package var rememberedTraceCount: Int { core.rememberedTraceCount }

    /// Buffers `spans` (in order) that arrived at `now`. Returns what happened to them and what must be
    /// released at once: `too_large` parts, `late` fragments, and `evicted` traces.
    package mutating func receive(_ spans: [SpanRecord], now: Instant) -> (IngestSummary, [FinishedTrace]) {
        core.receive(spans, now: elapsed(at: now))
    }

    /// Applies the timers due at `now`: idle closed traces (`closed`), traces at `maxTraceAge`
    /// (`timeout`), and forgets released ids older than `lateWindow`.
    package mutating func tick(now: Instant) -> [FinishedTrace] {
        core.tick(now: elapsed(at: now))
    }

    /// Releases every buffered trace (`shutdown`, complete if closed), oldest first span first.
    /// Their ids are remembered as released at `now`, like any release.
    package mutating func flush(now: Instant) -> [FinishedTrace] {
        core.flush(now: elapsed(at: now))
    }

    /// Timer-queue lengths, current and stale entries together (for tests of boundedness).
    var queuedTimers: (idle: Int, age: Int) { core.queuedTimers }
    var tableCapacity: Int { core.tableCapacity }

    private mutating func elapsed(at instant: Instant) -> Duration {
        guard let origin else {
            origin = instant
            return .zero
        }
        return origin.duration(to: instant)
    }
}
