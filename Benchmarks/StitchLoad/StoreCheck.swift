import Foundation
import GRDB
import OTLPWire
import StitchLoadKit

/// Reads the store (a SQLite file read-only, alongside the running server: the store is in WAL
/// mode; or a PostgreSQL store through `psql`) and compares every generated trace with what was
/// committed. The store may also be an MLflow database that the `mlflow_database` destination
/// writes (it has MLflow's `alembic_version` table): the same rows, without Stitch's own tags.
struct StoreCheck {
    private enum Backend {
        case sqlite(DatabaseQueue)
        /// A `postgresql://` URL, read with Debian's `psql` (no driver in the load generator).
        case postgres(String)
    }

    private let backend: Backend
    /// An MLflow database: no `stitch.*` tags to check.
    private(set) var isMLflowDatabase = false

    init(path: String) throws {
        let backend: Backend
        let tables: String
        if path.hasPrefix("postgresql://") || path.hasPrefix("postgres://") {
            backend = .postgres(path)
            tables = "information_schema.tables WHERE table_name = 'alembic_version'"
        } else {
            var configuration = Configuration()
            configuration.readonly = true
            configuration.label = "stitch-load.check"
            // An MLflow database is in rollback-journal mode: a read waits for the writer's commit.
            configuration.busyMode = .timeout(30)
            backend = .sqlite(try DatabaseQueue(path: path, configuration: configuration))
            tables = "sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        }
        self.backend = backend
        let found = try rows("SELECT CAST(COUNT(*) AS TEXT) FROM \(tables)").first?.first ?? nil
        self.isMLflowDatabase = found != nil && found != "0"
    }

    /// Every row of a query, each column as text (nil for NULL).
    private func rows(_ sql: String) throws -> [[String?]] {
        switch backend {
        case .sqlite(let database):
            return try database.read { db in
                try Row.fetchAll(db, sql: sql).map { row in (0..<row.count).map { row[$0] as String? } }
            }
        case .postgres(let url):
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
            // Unit separator between columns, and a NULL no text of these queries can be.
            process.arguments = [url, "-X", "-q", "-A", "-t", "-F", "\u{1F}", "-P", "null=\u{1}", "-v", "ON_ERROR_STOP=1", "-c", sql]
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw CheckError("psql failed: \(errorText)") }
            return String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
                line.split(separator: "\u{1F}", omittingEmptySubsequences: false).map { $0 == "\u{1}" ? nil : String($0) }
            }
        }
    }

    struct CheckError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Rows in `trace_info`.
    func committedTraces() throws -> Int {
        Int(try rows("SELECT CAST(COUNT(*) AS TEXT) FROM trace_info").first?.first.flatMap { $0 } ?? "0") ?? 0
    }

    /// How many of `requestIDs` are in `trace_info`.
    func committed(of requestIDs: Set<String>) throws -> Int {
        try rows("SELECT request_id FROM trace_info").reduce(0) { count, row in
            count + (row[0].map(requestIDs.contains) == true ? 1 : 0)
        }
    }

    /// Checks each trace: present, exactly its spans (no more, no fewer), every parent link as
    /// generated (so the root has none and every parent is in the trace), `stitch.services` naming its
    /// services, and the experiment when one was asked for.
    func verify(_ plan: TrafficPlan, experimentID: String?) throws -> Verification {
        var index: [String: Int] = [:]
        index.reserveCapacity(plan.traces.count)
        for (position, trace) in plan.traces.enumerated() { index["tr-" + trace.traceID.hex] = position }

        var result = Verification(total: plan.traces.count)
        var present = [Bool](repeating: false, count: plan.traces.count)
        var experimentOK = [Bool](repeating: true, count: plan.traces.count)
        for row in try rows("SELECT request_id, CAST(experiment_id AS TEXT) FROM trace_info") {
            guard let id = row[0], let position = index[id] else { continue }
            present[position] = true
            if let experimentID, row[1] != experimentID { experimentOK[position] = false }
        }

        // Stored spans of each trace: span id → parent (nil for a root).
        var stored = [[UInt64: UInt64?]](repeating: [:], count: plan.traces.count)
        for row in try rows("SELECT trace_id, span_id, parent_span_id FROM spans") {
            guard let id = row[0], let position = index[id] else { continue }
            let spanID = row[1].flatMap { SpanID(hex: $0)?.raw } ?? 0
            let parent: UInt64? = row[2].map { SpanID(hex: $0)?.raw ?? 0 }
            stored[position][spanID] = parent
        }

        var tags = [[String: String]](repeating: [:], count: plan.traces.count)
        for row in try rows("""
            SELECT request_id, key, value FROM trace_tags WHERE key IN ('stitch.services', 'stitch.completeness')
            """) {
            guard let id = row[0], let position = index[id], let key = row[1] else { continue }
            tags[position][key] = row[2]
        }

        for (position, trace) in plan.traces.enumerated() {
            guard present[position] else {
                result.fail(.missing, trace: trace)
                continue
            }
            let completeness = tags[position]["stitch.completeness"] ?? "(none)"
            result.completeness[completeness, default: 0] += 1
            if let problem = Self.problem(trace, stored: stored[position], tags: tags[position], stitchTags: !isMLflowDatabase) {
                result.fail(problem, trace: trace)
            } else if !experimentOK[position] {
                result.fail(.wrongExperiment, trace: trace)
            } else {
                result.exact += 1
            }
        }
        return result
    }

    private static func problem(_ trace: PlannedTrace, stored: [UInt64: UInt64?], tags: [String: String],
                                stitchTags: Bool) -> Verification.Problem? {
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
        if stitchTags && tags["stitch.services"] != services { return .wrongServices }
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
