import OTLPWire

/// The request payloads that buffered spans keep alive, and the bytes they hold: what
/// `maxBufferedBytes` limits and `stitch_buffered_bytes` reports.
///
/// A span record keeps its whole request body alive (`SpanRecord.payload`), so a buffered span is charged
/// its payload's `bytes`, once per payload however many spans share it; a payload stops counting when its
/// last buffered span is released. A payload whose buffered spans have become a small share of it (the
/// rest of its request released, its spans waiting for a trace that stays open) is *wasteful*:
/// `AssemblerCore` then moves those spans into a compact payload of their own, so that the request's body
/// is freed and the bytes held stay close to the spans' own bytes.
///
/// Cost: spans of one payload arrive together, so `hold` keeps a run of them (one payload) and settles it
/// into the table once, when another payload starts or before anything is released.
struct HeldPayloads {
    struct Entry {
        let payload: RequestPayload
        /// Buffered spans that point into `payload`.
        var spans: Int
        /// Their `encodedSize`, together.
        var spanBytes: Int
        /// Traces that were given spans of `payload`; a trace can be listed twice, or be released by now.
        var holders: [TraceID]
    }

    /// Payloads held by at least one buffered span.
    private(set) var entries: [ObjectIdentifier: Entry] = [:]
    /// Sum of `payload.bytes.count` over `entries`.
    private(set) var bytes = 0
    /// Payloads that were left wasteful by a release since the last `takeCandidates()`.
    private var candidates: [ObjectIdentifier] = []

    /// The run of spans being held that share one payload, not yet in `entries`.
    private var runPayload: RequestPayload?
    private var runSpans = 0
    private var runSpanBytes = 0
    private var runHolders: [TraceID] = []

    /// Tolerated waste of a payload beyond twice its spans' bytes: a compact payload carries its
    /// resource and scope besides its spans, and is not compacted again for that.
    static let wasteSlack = 4096

    /// Whether `entry`'s spans are a small enough share of it that moving them out is worth a copy.
    static func isWasteful(_ entry: Entry) -> Bool {
        entry.payload.bytes.count > 2 * entry.spanBytes + wasteSlack
    }

    /// Counts `span` (just buffered) against its payload; `newHolder` is its trace when that trace had
    /// no span of this payload before.
    mutating func hold(_ span: SpanRecord, newHolder: TraceID?) {
        if runPayload !== span.payload {
            settle()
            runPayload = span.payload
        }
        runSpans += 1
        runSpanBytes += span.encodedSize
        if let newHolder { runHolders.append(newHolder) }
    }

    /// Moves the current run into `entries`.
    mutating func settle() {
        guard let payload = runPayload else { return }
        let id = ObjectIdentifier(payload)
        if let index = entries.index(forKey: id) {
            entries.values[index].spans += runSpans
            entries.values[index].spanBytes += runSpanBytes
            entries.values[index].holders += runHolders
        } else {
            entries[id] = Entry(payload: payload, spans: runSpans, spanBytes: runSpanBytes, holders: runHolders)
            bytes += payload.bytes.count
        }
        runPayload = nil
        runSpans = 0
        runSpanBytes = 0
        runHolders.removeAll(keepingCapacity: true)
    }

    /// Uncounts buffered spans that are being released.
    mutating func release(_ spans: [SpanRecord]) {
        settle()
        var start = 0
        while start < spans.count {
            // A trace's spans come in runs of one request each.
            let payload = spans[start].payload
            var end = start
            var spanBytes = 0
            while end < spans.count, spans[end].payload === payload {
                spanBytes += spans[end].encodedSize
                end += 1
            }
            uncount(ObjectIdentifier(payload), spans: end - start, spanBytes: spanBytes)
            start = end
        }
    }

    private mutating func uncount(_ id: ObjectIdentifier, spans: Int, spanBytes: Int) {
        guard let index = entries.index(forKey: id) else {
            assertionFailure("released spans of a payload that is not held")
            return
        }
        entries.values[index].spans -= spans
        entries.values[index].spanBytes -= spanBytes
        if entries.values[index].spans <= 0 {
            bytes -= entries.values[index].payload.bytes.count
            entries.remove(at: index)
        } else if Self.isWasteful(entries.values[index]) {
            candidates.append(id)
        }
    }

    /// Payloads left wasteful since the last call (some may have been released or compacted since).
    mutating func takeCandidates() -> [ObjectIdentifier] {
        defer { candidates.removeAll(keepingCapacity: true) }
        return candidates
    }

    var hasCandidates: Bool { !candidates.isEmpty }

    /// The spans of `old` now point into `new` (a compact copy), and are buffered in `holders`.
    mutating func replace(_ old: ObjectIdentifier, with new: RequestPayload, holders: [TraceID]) {
        settle()
        guard let entry = entries.removeValue(forKey: old) else { return }
        bytes -= entry.payload.bytes.count
        entries[ObjectIdentifier(new)] = Entry(
            payload: new, spans: entry.spans, spanBytes: entry.spanBytes, holders: holders)
        bytes += new.bytes.count
    }

    /// With nothing buffered, gives back the table's storage grown by a burst.
    mutating func releaseStorage() {
        settle()
        assert(entries.isEmpty, "payloads held with no trace buffered")
        guard entries.isEmpty else { return }
        entries = [:]
        candidates = []
        runHolders = []
    }
}
