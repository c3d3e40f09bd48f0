import Foundation
import GRDB
import GRDBSQLite
import TraceModel

/// An MLflow database in a SQLite file (`mlflow server --backend-store-uri sqlite:///…`), written
/// the way MLflow's own OTLP ingest writes it (`MLflowRows`), one transaction per batch.
///
/// The file is MLflow's: Stitch neither creates nor changes its schema, journal mode or page
/// size, and waits for the lock while `mlflow server` writes.
package final class MLflowSQLiteDatabase: Sendable {
    package let path: String
    package let schema: MLflowSchema
    private let queue: DatabaseQueue

    /// How long a write waits for `mlflow server`'s lock before it fails (and is retried).
    static let busyTimeout: TimeInterval = 10

    /// Opens the file and checks its schema revision; fails when there is no file, when it is not
    /// an MLflow database or at a revision Stitch does not know.
    package init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError("""
                there is no MLflow database at \(path): create it with `mlflow db upgrade sqlite:///\(path)` \
                (Stitch never creates MLflow's schema)
                """)
        }
        var configuration = Configuration()
        configuration.label = "stitch.mlflow-database"
        configuration.busyMode = .timeout(Self.busyTimeout)
        // As in Stitch's store: the writer keeps the references itself (experiment checked, trace
        // row before its spans).
        configuration.foreignKeysEnabled = false
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw StoreError("cannot open the MLflow database at \(path): \(error)")
        }
        let revision: String?
        do {
            revision = try queue.read { db -> String? in
                guard try db.tableExists("alembic_version") else { throw MLflowSchema.notMLflow(path) }
                return try String.fetchOne(db, sql: "SELECT version_num FROM alembic_version")
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError("cannot read the MLflow database at \(path): \(error)")
        }
        schema = try MLflowSchema.check(revision: revision, database: path)
    }

    /// Writes the traces in one transaction. `defaultExperimentID` is the experiment of traces
    /// that name none.
    package func write(_ traces: [PreparedTrace], defaultExperimentID: Int64) async throws -> MLflowWriteResult {
        try await queue.write { db in
            var writer = MLflowSQLiteWriter(defaultExperimentID: defaultExperimentID)
            return try writer.write(traces, db)
        }
    }

    /// Whether a failed write may succeed later: the file locked by another writer, or an I/O
    /// condition (a full disk) that may pass.
    package static func isRetryable(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        return [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_IOERR, .SQLITE_FULL, .SQLITE_CANTOPEN, .SQLITE_PROTOCOL]
            .contains(error.resultCode)
    }

    package func close() throws { try queue.close() }
}

/// The SQL of one batch into an MLflow SQLite database, inside its transaction.
struct MLflowSQLiteWriter {
    let defaultExperimentID: Int64
    private var experiments: [Int64: MLflowExperiment?] = [:]

    init(defaultExperimentID: Int64) { self.defaultExperimentID = defaultExperimentID }

    mutating func write(_ traces: [PreparedTrace], _ db: Database) throws -> MLflowWriteResult {
        var result = MLflowWriteResult()
        for trace in traces {
            let experimentID = trace.experimentID ?? defaultExperimentID
            guard let experiment = try experiment(experimentID, db) else {
                result.refuseUnknownExperiment(trace, experimentID)
                continue
            }
            if try StoreWriter.insertTraceInfoIfNew(requestID: trace.requestID, experimentID: experimentID, trace.derivedAsNew, db) {
                try upsertSpans(trace, experimentID: experimentID, db)
                try writeTags(MLflowRows.tags(trace, newIn: experiment), metadata: MLflowRows.metadata(trace), trace.requestID, db)
                result.tracesInserted += 1
            } else {
                guard let stored = try storedTrace(trace.requestID, db) else {
                    throw StoreError("trace \(trace.requestID) is neither new nor stored")
                }
                if let refusal = MLflowRows.refusal(trace, stored) {
                    result.refused.append((trace.requestID, experimentID, refusal))
                    continue
                }
                let storedSpans = MLflowRows.needsStoredSpans(trace, stored) ? try storedFacts(trace.requestID, db) : []
                // One trace belongs to one experiment: the spans go where the trace is.
                try upsertSpans(trace, experimentID: stored.experimentID, db)
                try update(trace.requestID, MLflowRows.update(trace, stored: stored, storedSpans: storedSpans), db)
                try writeTags(MLflowRows.tags(trace, newIn: nil), metadata: MLflowRows.metadata(trace), trace.requestID, db)
                result.tracesMerged += 1
            }
            result.spansWritten += trace.spans.count
        }
        return result
    }

    private mutating func experiment(_ id: Int64, _ db: Database) throws -> MLflowExperiment? {
        if let known = experiments[id] { return known }
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT artifact_location FROM experiments WHERE experiment_id = ?"), arguments: [id])
        let experiment = row.map { MLflowExperiment(id: id, artifactLocation: $0[0]) }
        experiments[id] = .some(experiment)
        return experiment
    }

    private func storedTrace(_ requestID: String, _ db: Database) throws -> MLflowStoredTrace? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT \(MLflowStoredTrace.selectColumns) FROM trace_info ti WHERE ti.request_id = ?
            """), arguments: [requestID]) else { return nil }
        return MLflowStoredTrace(experimentID: row[0], timestampMs: row[1], executionTimeMs: row[2], status: row[3],
                                 spansLocation: row[4], finalized: row[5] as Int64 != 0, hasTokenUsage: row[6] as Int64 != 0,
                                 hasCost: row[7] as Int64 != 0)
    }

    /// Every stored span of the trace, with content where it holds token usage or cost.
    private func storedFacts(_ requestID: String, _ db: Database) throws -> [SpanFacts] {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: """
            SELECT span_id, parent_span_id, start_time_unix_nano, end_time_unix_nano, status,
                CASE WHEN \(MLflowRows.recomputeKeys.map { "instr(content, '\"\($0)\"') > 0" }.joined(separator: " OR "))
                THEN content END
            FROM spans WHERE trace_id = ?
            """), arguments: [requestID])
        var facts: [SpanFacts] = []
        while let row = try rows.next() {
            if let fact = SpanFacts(storedSpanID: row[0], parentSpanID: row[1], startTimeUnixNano: row[2],
                                    endTimeUnixNano: row[3], status: row[4], resourceID: nil, content: row[5]) {
                facts.append(fact)
            }
        }
        return facts
    }

    private func upsertSpans(_ trace: PreparedTrace, experimentID: Int64, _ db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            INSERT INTO spans (\(MLflowSpanColumns.names.joined(separator: ", ")))
            VALUES (\(Array(repeating: "?", count: MLflowSpanColumns.names.count).joined(separator: ", ")))
            \(MLflowSpanColumns.upsert)
            """)
        for index in trace.spans.indices {
            try StoreWriter.insert(trace.spans[index].row, requestID: trace.requestID, experimentID: experimentID,
                                   resourceID: .none, statement, db)
        }
    }

    private func update(_ requestID: String, _ update: MLflowTraceUpdate, _ db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            UPDATE trace_info SET \(MLflowTraceUpdate.assignments(old: { $0 }, value: { _ in "?" })) WHERE request_id = ?
            """)
        var binder = RowBinder(statement: statement.sqliteStatement)
        StoreWriter.bindTraceInfoValues(update, &binder)
        binder.text(requestID)
        try binder.step(statement, db)
    }

    private func writeTags(_ tags: [(key: String, value: String)], metadata: [(key: String, value: String)],
                           _ requestID: String, _ db: Database) throws {
        let tag = try db.cachedStatement(sql: """
            INSERT INTO trace_tags (key, value, request_id) VALUES (?, ?, ?)
            ON CONFLICT (key, request_id) DO UPDATE SET value = excluded.value
            """)
        let entry = try db.cachedStatement(sql: """
            INSERT INTO trace_request_metadata (key, value, request_id) VALUES (?, ?, ?) ON CONFLICT (key, request_id) DO NOTHING
            """)
        for (statement, pairs) in [(tag, tags), (entry, metadata)] {
            for (key, value) in pairs {
                var binder = RowBinder(statement: statement.sqliteStatement)
                binder.text(key)
                binder.text(value)
                binder.text(requestID)
                try binder.step(statement, db)
            }
        }
    }
}
