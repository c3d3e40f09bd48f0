import Logging
import PostgresNIO
import TraceModel

/// An MLflow database on PostgreSQL (`mlflow server --backend-store-uri postgresql://…`), written
/// the way MLflow's own OTLP ingest writes it (`MLflowRows`): one transaction per batch, each table
/// written by one statement over the batch's columns as arrays, as Stitch's own PostgreSQL store.
/// A stored trace is locked (`FOR UPDATE`, in id order) before it is merged, as MLflow locks it,
/// so Stitch and `mlflow server` writing the same trace take turns.
package final class MLflowPostgresDatabase: Sendable {
    package let url: PostgresURL
    package let schema: MLflowSchema
    private let slots: ConnectionSlots
    private let logger: Logger

    /// One write at a time is what the destination's sender runs; one more for the start-up check.
    static let maximumConnections = 2

    /// Connects, reads `alembic_version` and checks the revision. Fails with the server's reason
    /// when the database cannot be reached within the URL's `connect_timeout`.
    package init(url: PostgresURL, logger: Logger) async throws {
        self.url = url
        self.logger = logger
        let configuration = try PostgresTraceStore.connectionConfiguration(url)
        let slots = ConnectionSlots(limit: Self.maximumConnections) {
            try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        }
        self.slots = slots
        let revision: String?
        do {
            revision = try await slots.withConnection { [logger] connection in
                let exists = try await connection.query(
                    "SELECT to_regclass('alembic_version') IS NOT NULL", logger: logger).collect()
                guard try exists.first?.decode(Bool.self) == true else { throw MLflowSchema.notMLflow(url.description) }
                return try await connection.query("SELECT version_num::text FROM alembic_version", logger: logger)
                    .collect().first?.decode(String.self)
            }
            schema = try MLflowSchema.check(revision: revision, database: url.description)
        } catch let error as StoreError {
            await slots.close()
            throw error
        } catch {
            await slots.close()
            throw StoreError("cannot open the MLflow database at \(url): \(PostgresErrors.describe(error))")
        }
    }

    package func write(_ traces: [PreparedTrace], defaultExperimentID: Int64) async throws -> MLflowWriteResult {
        try await slots.withTransaction(logger: logger) { [logger] connection in
            try await MLflowPostgresWriter(connection: connection, logger: logger, defaultExperimentID: defaultExperimentID)
                .write(traces)
        }
    }

    /// The failure is the connection's or a conflict with another writer: the same write may
    /// succeed later.
    package static func isRetryable(_ error: any Error) -> Bool { PostgresErrors.isRetryable(error) }

    /// The server's SQLSTATE and message, never the values.
    package static func describe(_ error: any Error) -> String { PostgresErrors.describe(error) }

    package func close() async { await slots.close() }
}

enum MLflowStatements {
    /// $1 experiment ids: those that exist, with their artifact location.
    struct Experiments: BatchStatement {
        static let sql = """
            SELECT experiment_id::bigint, artifact_location FROM experiments WHERE experiment_id = ANY($1::bigint[])
            """
        var bindings: PostgresBindings
    }

    /// The stored traces among $1, locked in id order.
    struct LockStoredTraces: BatchStatement {
        static let sql = """
            SELECT ti.request_id, \(MLflowStoredTrace.selectColumns.replacingOccurrences(of: "ti.experiment_id,", with: "ti.experiment_id::bigint,"))
            FROM trace_info ti WHERE ti.request_id = ANY($1::text[]) ORDER BY ti.request_id FOR UPDATE OF ti
            """
        var bindings: PostgresBindings
    }

    /// Every stored span of the traces in $1, with content where it holds token usage or cost.
    struct StoredFacts: BatchStatement {
        static let sql = """
            SELECT trace_id, span_id, parent_span_id, start_time_unix_nano, end_time_unix_nano, status,
                CASE WHEN \(MLflowRows.recomputeKeys.map { "strpos(content, '\"\($0)\"') > 0" }.joined(separator: " OR "))
                THEN content END
            FROM spans WHERE trace_id = ANY($1::text[])
            """
        var bindings: PostgresBindings
    }

    struct UpsertSpans: BatchStatement {
        static let sql = """
            INSERT INTO spans (\(MLflowSpanColumns.names.joined(separator: ", ")))
            SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::bigint[], $9::bigint[], $10::text[], $11::float8[], $12::float8[], $13::float8[], $14::text[], $15::text[])
            \(MLflowSpanColumns.upsert)
            """
        var bindings: PostgresBindings
    }

    /// $1 request ids, then the columns of `MLflowTraceUpdate.columns`.
    struct UpdateTraceInfo: BatchStatement {
        static let sql = """
            UPDATE trace_info t SET \(MLflowTraceUpdate.assignments(old: { "t.\($0)" }, value: { "u.\($0)" }))
            FROM unnest($1::text[], \(Statements.traceInfoValueArrays(from: 2)))
                AS u(request_id, \(MLflowTraceUpdate.columns.map(\.name).joined(separator: ", ")))
            WHERE t.request_id = u.request_id
            """
        var bindings: PostgresBindings
    }

    /// $1 keys, $2 values, $3 request ids; keys already there keep their value.
    struct InsertMetadata: BatchStatement {
        static let sql = """
            INSERT INTO trace_request_metadata (key, value, request_id) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
            ON CONFLICT (key, request_id) DO NOTHING
            """
        var bindings: PostgresBindings
    }
}

/// The SQL side of one batch into MLflow's tables, on one connection inside one transaction.
struct MLflowPostgresWriter {
    let connection: PostgresConnection
    let logger: Logger
    let defaultExperimentID: Int64

    func write(_ traces: [PreparedTrace]) async throws -> MLflowWriteResult {
        var result = MLflowWriteResult()
        let experiments = try await experiments(Set(traces.map { $0.experimentID ?? defaultExperimentID }))
        var writable: [PreparedTrace] = []
        for trace in traces {
            let experimentID = trace.experimentID ?? defaultExperimentID
            if experiments[experimentID] == nil {
                result.refuseUnknownExperiment(trace, experimentID)
            } else {
                writable.append(trace)
            }
        }
        for round in PreparedTrace.rounds(writable) {
            try await write(round, experiments: experiments, result: &result)
        }
        return result
    }

    private func experiments(_ ids: Set<Int64>) async throws -> [Int64: MLflowExperiment] {
        var column = ColumnArray(.int8, capacity: ids.count)
        for id in ids.sorted() { column.append(id) }
        var result: [Int64: MLflowExperiment] = [:]
        for row in try await connection.run(MLflowStatements.Experiments(bindings: bindings(column)), logger: logger) {
            let (id, location) = try row.decode((Int64, String?).self)
            result[id] = MLflowExperiment(id: id, artifactLocation: location)
        }
        return result
    }

    private func write(_ traces: [PreparedTrace], experiments: [Int64: MLflowExperiment], result: inout MLflowWriteResult) async throws {
        // New traces first: every trace_info row is inserted, and the ids already there (another
        // writer's, or an earlier batch's) are merged.
        let inserted = try await TraceInfoValueColumns.insertNew(
            traces, defaultExperimentID: defaultExperimentID, connection: connection, logger: logger)

        var stored: [String: MLflowStoredTrace] = [:]
        let merging = traces.filter { !inserted.contains($0.requestID) }
        if !merging.isEmpty {
            var mergingIDs = ColumnArray(.text, capacity: merging.count)
            for trace in merging { mergingIDs.append(trace.requestID) }
            for row in try await connection.run(MLflowStatements.LockStoredTraces(bindings: bindings(mergingIDs)), logger: logger) {
                let (id, experiment, timestamp, execution, status, location, finalized, tokens, cost) =
                    try row.decode((String, Int64, Int64, Int64?, String, String?, Int64, Int64, Int64).self)
                stored[id] = MLflowStoredTrace(experimentID: experiment, timestampMs: timestamp, executionTimeMs: execution,
                                               status: status, spansLocation: location, finalized: finalized != 0,
                                               hasTokenUsage: tokens != 0, hasCost: cost != 0)
            }
        }
        var merges: [(trace: PreparedTrace, stored: MLflowStoredTrace)] = []
        for trace in merging {
            guard let state = stored[trace.requestID] else {
                throw StoreError("trace \(trace.requestID) is neither new nor stored")
            }
            if let refusal = MLflowRows.refusal(trace, state) {
                result.refused.append((trace.requestID, trace.experimentID ?? defaultExperimentID, refusal))
            } else {
                merges.append((trace, state))
            }
        }
        let storedSpans = try await storedFacts(merges.filter { MLflowRows.needsStoredSpans($0.trace, $0.stored) }.map(\.trace.requestID))

        let written = traces.filter { inserted.contains($0.requestID) } + merges.map(\.trace)
        try await upsertSpans(written) { trace in stored[trace.requestID]?.experimentID ?? trace.experimentID ?? defaultExperimentID }
        if !merges.isEmpty {
            try await update(merges.map { ($0.trace.requestID, MLflowRows.update($0.trace, stored: $0.stored,
                                                                                  storedSpans: storedSpans[$0.trace.requestID] ?? [])) })
        }
        try await writeTags(written) { trace in
            inserted.contains(trace.requestID) ? experiments[trace.experimentID ?? defaultExperimentID] : nil
        }
        result.tracesInserted += inserted.count
        result.tracesMerged += merges.count
        result.spansWritten += written.reduce(0) { $0 + $1.spans.count }
    }

    private func storedFacts(_ requestIDs: [String]) async throws -> [String: [SpanFacts]] {
        guard !requestIDs.isEmpty else { return [:] }
        var column = ColumnArray(.text, capacity: requestIDs.count)
        for id in requestIDs { column.append(id) }
        var facts: [String: [SpanFacts]] = [:]
        for row in try await connection.run(MLflowStatements.StoredFacts(bindings: bindings(column)), logger: logger) {
            let (traceID, spanID, parent, start, end, status, content) =
                try row.decode((String, String, String?, Int64, Int64?, String, String?).self)
            if let fact = SpanFacts(storedSpanID: spanID, parentSpanID: parent, startTimeUnixNano: start,
                                    endTimeUnixNano: end, status: status, resourceID: nil, content: content) {
                facts[traceID, default: []].append(fact)
            }
        }
        return facts
    }

    private func upsertSpans(_ traces: [PreparedTrace], experiment: (PreparedTrace) -> Int64) async throws {
        let count = traces.reduce(0) { $0 + $1.spans.count }
        guard count > 0 else { return }
        var columns = SpanColumns(capacity: count, withResource: false)
        for trace in traces {
            let experimentID = experiment(trace)
            for index in trace.lastCopyIndexes {
                columns.append(trace.spans[index].row, requestID: trace.requestID, experimentID: experimentID, resourceID: nil)
            }
        }
        try await connection.run(MLflowStatements.UpsertSpans(bindings: columns.bindings()), logger: logger)
    }

    private func update(_ updates: [(requestID: String, update: MLflowTraceUpdate)]) async throws {
        var ids = ColumnArray(.text, maximumCharacters: 50, capacity: updates.count)
        var values = TraceInfoValueColumns(capacity: updates.count)
        for (id, update) in updates {
            ids.append(id)
            values.append(update)
        }
        let parameters = values.bindings(after: ids)
        try await connection.run(MLflowStatements.UpdateTraceInfo(bindings: parameters), logger: logger)
    }

    /// `newIn`: the experiment of a trace this batch created (its artifact location tag), nil for a merge.
    private func writeTags(_ traces: [PreparedTrace], newIn: (PreparedTrace) -> MLflowExperiment?) async throws {
        var tags = KeyValueColumns()
        var metadata = KeyValueColumns()
        for trace in traces {
            tags.append(MLflowRows.tags(trace, newIn: newIn(trace)), requestID: trace.requestID)
            metadata.append(MLflowRows.metadata(trace), requestID: trace.requestID)
        }
        if let parameters = tags.bindings {
            try await connection.run(Statements.UpsertTags(bindings: parameters), logger: logger)
        }
        if let parameters = metadata.bindings {
            try await connection.run(MLflowStatements.InsertMetadata(bindings: parameters), logger: logger)
        }
    }
}
