import OTLPWire

/// The span ids of one buffered trace (its accepted spans, or the parents it still misses).
///
/// Traces hold tens of spans, and every span received looks its trace's ids up once or twice: a
/// `Set` hashes each id with SipHash and rehashes its table four or five times while a trace grows
/// to twenty spans (measured: the set's inserts were a quarter of the assembler's time per span).
/// Up to `linearLimit` ids live in a plain array searched front to back, a few cache lines; a trace
/// that grows past it moves to a `Set`.
struct SpanIDSet {
    static let linearLimit = 48

    private var few: [UInt64] = []
    private var many: Set<UInt64>?

    var isEmpty: Bool { many?.isEmpty ?? few.isEmpty }

    var count: Int { many?.count ?? few.count }

    func contains(_ id: SpanID) -> Bool {
        if let many { return many.contains(id.raw) }
        return few.contains(id.raw)
    }

    /// Adds `id`; false (and nothing changes) when it is already there.
    mutating func insert(_ id: SpanID) -> Bool {
        if many != nil { return many!.insert(id.raw).inserted }
        guard !few.contains(id.raw) else { return false }
        if few.count == Self.linearLimit {
            var set = Set(few)
            set.insert(id.raw)
            many = set
            few = []
        } else {
            if few.isEmpty { few.reserveCapacity(8) }
            few.append(id.raw)
        }
        return true
    }

    mutating func remove(_ id: SpanID) {
        if many != nil {
            many!.remove(id.raw)
        } else if let index = few.firstIndex(of: id.raw) {
            // Order does not matter: the last one takes the removed one's place.
            few.swapAt(index, few.count - 1)
            few.removeLast()
        }
    }
}
