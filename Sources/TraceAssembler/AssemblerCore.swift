import DequeModule
import TraceEdge
import OTLPWire

/// The engine of `AssemblerState` (see there for the rules), on times given as durations since an
/// arbitrary origin. Not generic, so that the per-span code is compiled once, fully specialised:
/// generic code called from another module runs unspecialised, with metadata lookups and witness calls
/// on every span.
struct AssemblerCore: Sendable {
    /// A deadline in one of the FIFO queues; `stamp` must still match the trace's for it to count.
    struct Timer: Sendable {
        var traceID: TraceID
        var stamp: UInt64
        var deadline: Duration
    }

    let configuration: AssemblerConfiguration
    private var traces: [TraceID: BufferedTrace] = [:]
    /// Idle deadlines of closed traces; current when `stamp == trace.idleStamp`.
    private var idleQueue: Deque<Timer> = []
    /// One entry per trace ever buffered, in first-span order: the `maxTraceAge` deadlines and the
    /// eviction order. Current when `stamp == trace.incarnation`.
    private var ageQueue: Deque<Timer> = []
    private var released: ReleasedTraceMemory
    private var nextStamp: UInt64 = 1
    private var callSerial: UInt64 = 0
    /// Traces that got spans in the current `receive` call (kept to reuse its storage).
    private var touched: [TraceID] = []
    private var bufferedSpans = 0
    /// The payloads the buffered spans keep alive; their bytes are what `maxBufferedBytes` limits.
    private var held = HeldPayloads()
    private var maxSpansPerTrace: Int { max(1, configuration.maxSpansPerTrace) }

    private(set) var counters = AssemblerCounters()

    init(configuration: AssemblerConfiguration) {
        self.configuration = configuration
        self.released = ReleasedTraceMemory(capacity: configuration.rememberedTraceLimit)
    }

    var stats: AssemblerStats {
        AssemblerStats(bufferedTraces: traces.count, bufferedSpans: bufferedSpans, bufferedBytes: held.bytes)
    }

    var rememberedTraceCount: Int { released.count }

    /// `AssemblerState.receive(_:now:)`.
    mutating func receive(_ spans: [SpanRecord], now: Duration) -> (IngestSummary, [FinishedTrace]) {
        callSerial &+= 1
        var summary = IngestSummary()
        var releases: [FinishedTrace] = []
        var lateFragments: [TraceID: Int] = [:]
        var lateOrder: [BufferedTrace] = []

        for span in spans {
            if let index = traces.index(forKey: span.traceID) {
                guard traces.values[index].register(span) else {
                    summary.duplicates += 1
                    continue
                }
                if inPlace(index, { $0.spans.count }) >= maxSpansPerTrace {
                    releases.append(releasePart(at: index))
                }
                buffer(span, at: index)
                summary.accepted += 1
            } else if released[span.traceID] != nil {
                // DESIGN.md: spans after their trace's release are late fragments, grouped per trace.
                let slot: Int
                if let existing = lateFragments[span.traceID] {
                    slot = existing
                } else {
                    slot = lateOrder.count
                    lateFragments[span.traceID] = slot
                    lateOrder.append(BufferedTrace(firstSeen: now, incarnation: 0))
                }
                if lateOrder[slot].register(span) {
                    _ = lateOrder[slot].append(span)
                    summary.late += 1
                } else {
                    summary.duplicates += 1
                }
            } else {
                var trace = BufferedTrace(firstSeen: now, incarnation: takeStamp())
                _ = trace.register(span)
                _ = trace.append(span)
                trace.touchedInCall = callSerial
                ageQueue.append(Timer(
                    traceID: span.traceID, stamp: trace.incarnation,
                    deadline: now + configuration.maxTraceAge))
                traces[span.traceID] = trace
                touched.append(span.traceID)
                bufferedSpans += 1
                held.hold(span, newHolder: span.traceID)
                summary.accepted += 1
            }
        }
        held.settle()

        for fragment in lateOrder {
            guard let traceID = fragment.spans.first?.traceID else { continue }
            let experimentID = released[traceID]?.experimentID ?? fragment.experimentID
            releases.append(finished(traceID, fragment.spans, .late, isComplete: false, experimentID: experimentID))
        }

        // A closed trace's idle timer restarts at its last span; one queue entry per trace per call.
        for traceID in touched {
            guard let index = traces.index(forKey: traceID) else { continue }
            if inPlace(index, { $0.isClosed }) {
                let stamp = takeStamp()
                traces.values[index].idleStamp = stamp
                idleQueue.append(Timer(
                    traceID: traceID, stamp: stamp, deadline: now + configuration.idleTimeout))
            } else {
                traces.values[index].idleStamp = 0
            }
        }
        touched.removeAll(keepingCapacity: true)

        evictOverLimits(now: now, into: &releases)
        compactQueuesIfStale()

        counters.acceptedSpans += summary.accepted
        counters.duplicateSpans += summary.duplicates
        counters.lateSpans += summary.late
        return (summary, releases)
    }

    /// `AssemblerState.tick(now:)`.
    mutating func tick(now: Duration) -> [FinishedTrace] {
        var releases: [FinishedTrace] = []
        // Idle first: a closed trace that is both quiet and old is reported as `closed`.
        while let timer = idleQueue.first, timer.deadline <= now {
            idleQueue.removeFirst()
            guard let index = trace(ofIdleTimer: timer), inPlace(index, { $0.isClosed }) else { continue }
            releases.append(release(at: index, reason: .closed, now: now))
        }
        while let timer = ageQueue.first, timer.deadline <= now {
            ageQueue.removeFirst()
            guard let index = trace(ofAgeTimer: timer) else { continue }
            releases.append(release(at: index, reason: .timeout, now: now))
        }
        let forgottenBefore = released.forgottenEarly
        released.expire(now: now, window: configuration.lateWindow)
        counters.releasedIDsForgottenEarly += released.forgottenEarly - forgottenBefore
        compactWastefulPayloads()
        releaseStorageIfEmpty()
        return releases
    }

    /// Buffers emptied after a burst keep the capacity the burst grew (~4 MiB of trace table after
    /// 300,000 spans); with nothing buffered, start over small. Every timer left then is stale.
    private mutating func releaseStorageIfEmpty() {
        guard traces.isEmpty, traces.capacity > Self.capacityKeptWhenEmpty else { return }
        traces = [:]
        held.releaseStorage()
        idleQueue = []
        ageQueue = []
        touched = []
    }

    static let capacityKeptWhenEmpty = 4096

    /// `AssemblerState.flush(now:)`.
    mutating func flush(now: Duration) -> [FinishedTrace] {
        var releases: [FinishedTrace] = []
        releases.reserveCapacity(traces.count)
        while let timer = ageQueue.popFirst() {
            guard let index = trace(ofAgeTimer: timer) else { continue }
            releases.append(release(at: index, reason: .shutdown, now: now))
        }
        idleQueue.removeAll()
        assert(traces.isEmpty, "every buffered trace has exactly one current age-queue entry")
        _ = held.takeCandidates()
        return releases
    }

    /// Timer-queue lengths, current and stale entries together.
    var queuedTimers: (idle: Int, age: Int) { (idleQueue.count, ageQueue.count) }

    /// Buckets of the trace table (tests: its storage is given back when empty).
    var tableCapacity: Int { traces.capacity }

    // MARK: - Timers


    typealias TraceIndex = Dictionary<TraceID, BufferedTrace>.Index

    /// Reads a buffered trace where it lies. `traces.values[index].x` would copy the whole trace out
    /// of the dictionary first (retaining and releasing its arrays and sets: measured at a fifth of
    /// the time spent buffering a span); the mutating access lends it in place.
    private mutating func inPlace<T>(_ index: TraceIndex, _ read: (inout BufferedTrace) -> T) -> T {
        read(&traces.values[index])
    }

    /// The trace an idle-queue entry was queued for, if the entry is still its current one.
    private mutating func trace(ofIdleTimer timer: Timer) -> TraceIndex? {
        guard let index = traces.index(forKey: timer.traceID), inPlace(index, { $0.idleStamp }) == timer.stamp
        else { return nil }
        return index
    }

    /// The trace an age-queue entry was queued for, if it is still buffered (not a later trace
    /// with the same id).
    private mutating func trace(ofAgeTimer timer: Timer) -> TraceIndex? {
        guard let index = traces.index(forKey: timer.traceID), inPlace(index, { $0.incarnation }) == timer.stamp
        else { return nil }
        return index
    }

    // MARK: - Releasing

    private mutating func takeStamp() -> UInt64 {
        defer { nextStamp &+= 1 }
        return nextStamp
    }

    private mutating func buffer(_ span: SpanRecord, at index: TraceIndex) {
        let call = callSerial
        let (firstThisCall, newHolder) = inPlace(index) { trace -> (Bool, Bool) in
            let newHolder = trace.append(span)
            defer { trace.touchedInCall = call }
            return (trace.touchedInCall != call, newHolder)
        }
        bufferedSpans += 1
        held.hold(span, newHolder: newHolder ? span.traceID : nil)
        if firstThisCall { touched.append(traces.keys[index]) }
    }

    /// Releases the buffered spans of a trace that stays open.
    private mutating func releasePart(at index: TraceIndex) -> FinishedTrace {
        let spans = inPlace(index) { $0.takeSpans() }
        bufferedSpans -= spans.count
        held.release(spans)
        return finished(
            traces.keys[index], spans, .tooLarge, isComplete: false,
            experimentID: traces.values[index].experimentID)
    }

    /// Releases a whole trace and remembers its id for `lateWindow`.
    private mutating func release(
        at index: TraceIndex, reason: ReleaseReason, now: Duration
    ) -> FinishedTrace {
        let (traceID, trace) = traces.remove(at: index)
        bufferedSpans -= trace.spans.count
        held.release(trace.spans)
        let forgottenBefore = released.forgottenEarly
        released.remember(traceID, experimentID: trace.experimentID, at: now)
        counters.releasedIDsForgottenEarly += released.forgottenEarly - forgottenBefore
        return finished(traceID, trace.spans, reason, isComplete: trace.isClosed, experimentID: trace.experimentID)
    }

    private mutating func finished(
        _ traceID: TraceID, _ spans: [SpanRecord], _ reason: ReleaseReason, isComplete: Bool, experimentID: String?
    ) -> FinishedTrace {
        counters.releasedTraces[reason, default: 0] += 1
        counters.releasedSpans[reason, default: 0] += spans.count
        return FinishedTrace(
            traceID: traceID, spans: spans, reason: reason, isComplete: isComplete, experimentID: experimentID)
    }

    /// DESIGN.md: over `max_traces` or `max_buffered_bytes`, the oldest traces are released early.
    private mutating func evictOverLimits(now: Duration, into releases: inout [FinishedTrace]) {
        let maxTraces = max(1, configuration.maxTraces)
        // Spans left in a payload by the parts released in this call are moved out before anything is
        // evicted for bytes; so are those left by each eviction, before the next.
        compactWastefulPayloads()
        while traces.count > maxTraces || held.bytes > configuration.maxBufferedBytes,
              let timer = ageQueue.popFirst() {
            guard let index = trace(ofAgeTimer: timer) else { continue }
            releases.append(release(at: index, reason: .evicted, now: now))
            compactWastefulPayloads()
        }
    }

    /// Moves the buffered spans of each wasteful payload (see `HeldPayloads`) into a compact payload of
    /// their own: one copy of those spans' bytes (at most half of the payload's), so that the rest of the
    /// request is no longer kept alive, nor counted.
    private mutating func compactWastefulPayloads() {
        guard held.hasCandidates else { return }
        for id in held.takeCandidates() {
            guard let entry = held.entries[id], HeldPayloads.isWasteful(entry) else { continue }
            var places: [(trace: TraceIndex, span: Int)] = []
            var spans: [SpanRecord] = []
            var holders: [TraceID] = []
            var seen = Set<TraceID>()
            places.reserveCapacity(entry.spans)
            spans.reserveCapacity(entry.spans)
            for traceID in entry.holders where seen.insert(traceID).inserted {
                guard let index = traces.index(forKey: traceID) else { continue }
                let before = spans.count
                inPlace(index) { trace in
                    for (position, span) in trace.spans.enumerated() where span.payload === entry.payload {
                        places.append((index, position))
                        spans.append(span)
                    }
                }
                if spans.count > before { holders.append(traceID) }
            }
            assert(spans.count == entry.spans, "a held payload's spans are all in its holders")
            guard spans.count == entry.spans, let moved = OTLPTraceDecoder.compacted(spans),
                  let compact = moved.first?.payload else { continue }
            let newID = ObjectIdentifier(compact)
            for (place, record) in zip(places, moved) {
                inPlace(place.trace) { trace in
                    trace.spans[place.span] = record
                    if trace.lastPayload == id { trace.lastPayload = newID }
                }
            }
            held.replace(id, with: compact, holders: holders)
            counters.compactedSpans += moved.count
            counters.compactedBytes += compact.bytes.count
        }
    }

    /// Drops stale timer entries once they outnumber the live traces, so that the queues stay within
    /// a constant factor of the buffer even when traces churn faster than their deadlines pass.
    /// Filtering keeps the order, and it runs after the queue has doubled, so it is amortised O(1).
    private mutating func compactQueuesIfStale() {
        let limit = 2 * traces.count + 1024
        // The lookups lend the traces in place (a mutating access), so filter a copy of each queue.
        if idleQueue.count > limit {
            let queue = idleQueue
            idleQueue = Deque(queue.filter { trace(ofIdleTimer: $0) != nil })
        }
        if ageQueue.count > limit {
            let queue = ageQueue
            ageQueue = Deque(queue.filter { trace(ofAgeTimer: $0) != nil })
        }
    }
}
