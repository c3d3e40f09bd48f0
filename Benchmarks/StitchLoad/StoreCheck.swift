import GRDB
import OTLPWire
import StitchLoadKit

/// Reads the store file (read-only, alongside the running server: the store is in WAL mode) and
/// compares every generated trace with what was committed.
struct StoreCheck {
    private let database: DatabaseQueue

    init(path: String) throws {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.label = "stitch-load.check"
        database = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Rows in `trace_info`.
    func committedTraces() throws -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM trace_info") ?? 0 }
    }

    /// How many of `requestIDs` are in `trace_info`.
    func committed(of requestIDs: Set<String>) throws -> Int {
        try database.read { db in
            var count = 0
            let cursor = try String.fetchCursor(db, sql: "SELECT request_id FROM trace_info")
            while let id = try cursor.next() {
                if requestIDs.contains(id) { count += 1 }
            }
            return count
        }
    }

    /// Checks each trace: present, exactly its spans (no more, no fewer), every parent link as
    /// generated (so the root has none and every parent is in the trace), `stitch.services` naming its
    /// services, and the experiment when one was asked for.
    func verify(_ plan: TrafficPlan, experimentID: String?) throws -> Verification {
        var index: [String: Int] = [:]
        index.reserveCapacity(plan.traces.count)
        for (position, trace) in plan.traces.enumerated() { index["tr-" + trace.traceID.hex] = position }

        return try database.read { db in
            var result = Verification(total: plan.traces.count)
            var present = [Bool](repeating: false, count: plan.traces.count)
            var experimentOK = [Bool](repeating: true, count: plan.traces.count)
            let infos = try Row.fetchCursor(db, sql: "SELECT request_id, CAST(experiment_id AS TEXT) FROM trace_info")
            while let row = try infos.next() {
                guard let position = index[row[0] as String] else { continue }
                present[position] = true
                if let experimentID, (row[1] as String?) != experimentID { experimentOK[position] = false }
            }

            // Stored spans of each trace: span id → parent (nil for a root).
            var stored = [[UInt64: UInt64?]](repeating: [:], count: plan.traces.count)
            let spans = try Row.fetchCursor(db, sql: "SELECT trace_id, span_id, parent_span_id FROM spans")
            while let row = try spans.next() {
                guard let position = index[row[0] as String] else { continue }
                let spanID = SpanID(hex: row[1] as String)?.raw ?? 0
                let parent: UInt64? = (row[2] as String?).map { SpanID(hex: $0)?.raw ?? 0 }
                stored[position][spanID] = parent
            }

            var tags = [[String: String]](repeating: [:], count: plan.traces.count)
            let tagRows = try Row.fetchCursor(db, sql: """
                SELECT request_id, key, value FROM trace_tags WHERE key IN ('stitch.services', 'stitch.completeness')
                """)
            while let row = try tagRows.next() {
                guard let position = index[row[0] as String] else { continue }
                tags[position][row[1] as String] = row[2] as String?
            }

            for (position, trace) in plan.traces.enumerated() {
                guard present[position] else {
                    result.fail(.missing, trace: trace)
                    continue
                }
                let completeness = tags[position]["stitch.completeness"] ?? "(none)"
                result.completeness[completeness, default: 0] += 1
                if let problem = Self.problem(trace, stored: stored[position], tags: tags[position]) {
                    result.fail(problem, trace: trace)
                } else if !experimentOK[position] {
                    result.fail(.wrongExperiment, trace: trace)
                } else {
                    result.exact += 1
                }
            }
            return result
        }
    }

    private static func problem(_ trace: PlannedTrace, stored: [UInt64: UInt64?], tags: [String: String]) -> Verification.Problem? {
        if stored.count < trace.spanCount { return .missingSpans }
        if stored.count > trace.spanCount { return .extraSpans }
        for (span, id) in trace.spanIDs.enumerated() {
            guard let parent = stored[id.raw] else { return .missingSpans }
            let expected = trace.parents[span]
            if expected.isZero {
                if parent != nil && parent != 0 { return .wrongParent }
            } else if parent != expected.raw {
                return .wrongParent
            }
        }
        let services = trace.serviceCount > 1 ? ServiceNames.servicesTag(count: trace.serviceCount) : nil
        if tags["stitch.services"] != services { return .wrongServices }
        return nil
    }
}

/// The outcome of comparing the store with the generated traces.
struct Verification: Sendable {
    enum Problem: String, Sendable, CaseIterable {
        case missing = "not stored"
        case missingSpans = "spans missing"
        case extraSpans = "extra spans"
        case wrongParent = "wrong parent link"
        case wrongServices = "wrong stitch.services"
        case wrongExperiment = "wrong experiment"
    }

    var total: Int
    var exact = 0
    var problems: [Problem: Int] = [:]
    /// The first few traces with a problem, for the report.
    var examples: [String] = []
    /// `stitch.completeness` values of the stored traces.
    var completeness: [String: Int] = [:]

    init(total: Int) {
        self.total = total
    }

    var allExact: Bool { exact == total }

    mutating func fail(_ problem: Problem, trace: PlannedTrace) {
        problems[problem, default: 0] += 1
        if examples.count < 5 { examples.append("tr-\(trace.traceID.hex): \(problem.rawValue)") }
    }
}
