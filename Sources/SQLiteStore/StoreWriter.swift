import TraceModel
import Foundation
import GRDB
import GRDBSQLite
import OTLPWire

/// What one write transaction did.
struct WriteSummary: Sendable, Equatable {
    var tracesInserted = 0
    var tracesMerged = 0
    var tracesSplit = 0
    var spansWritten = 0
}

/// The SQL side of a write: runs inside one transaction on GRDB's writer, with cached prepared
/// statements. Lookups of experiments and resources are remembered for the transaction only, so
/// that no state outlives a rolled-back transaction.
struct StoreWriter {
    let defaultExperimentID: Int64
    let now: Int64
    private var knownExperiments: Set<Int64> = []
    private var resourceIDs: [String: Int64] = [:]
    private var resourcesByID: [Int64: StoredResource] = [:]

    init(defaultExperimentID: Int64, nowMs: Int64) {
        self.defaultExperimentID = defaultExperimentID
        self.now = nowMs
    }

    mutating func write(_ traces: [PreparedTrace], _ db: Database) throws -> WriteSummary {
        var summary = WriteSummary()
        for trace in traces {
            try write(trace, db, summary: &summary)
        }
        return summary
    }

    private mutating func write(_ trace: PreparedTrace, _ db: Database, summary: inout WriteSummary) throws {
        // The spans are read where they lie: writing each one's resource id into them copied the
        // whole array (every row's strings and buffers) once per trace.
        let spans = trace.spans
        let ids = try zip(trace.resources, trace.resourceKeys).map { try resourceID(for: $0, key: $1, db) }
        // Most traces are new: the trace_info row is inserted first, and only when its id is already
        // there (the insert changes nothing) is the stored trace looked up. A separate "stored yet?"
        // query walked the same index once more per trace.
        let experimentID = trace.experimentID ?? defaultExperimentID
        if try Self.insertTraceInfoIfNew(requestID: trace.requestID, experimentID: experimentID, trace.derivedAsNew, db) {
            // Foreign keys are not enforced on this connection; the experiment is made in the same
            // transaction, so it exists whenever the trace does.
            _ = try ensureExperiment(experimentID, db)
            try upsert(spans, resourceIDs: ids, requestID: trace.requestID, experimentID: experimentID, db)
            try Self.writeLinks(trace.links, db)
            try writeTagsAndMetadata(requestID: trace.requestID, trace.derivedAsNew, db)
            summary.tracesInserted += 1
        } else {
            // A late fragment, another part of a large trace, or any trace id already stored: the
            // trace keeps its experiment (one trace belongs to one experiment) and is recomputed
            // from every stored span.
            let lookup = try db.cachedStatement(sql: "SELECT experiment_id FROM trace_info WHERE request_id = ?")
            var binder = RowBinder(statement: lookup.sqliteStatement)
            binder.text(trace.requestID)
            guard let storedExperimentID = try binder.firstInteger(lookup, db) else {
                throw StoreError("trace \(trace.requestID) is neither new nor stored")
            }
            try upsert(spans, resourceIDs: ids, requestID: trace.requestID, experimentID: storedExperimentID, db)
            try Self.writeLinks(trace.links, db)
            var incoming = spans.map(\.facts)
            for index in incoming.indices { incoming[index].resourceID = spans[index].resourceIndex.map { ids[$0] } }
            let batchIDs = Set(incoming.map(\.spanID))
            let facts = try storedFacts(requestID: trace.requestID, excluding: batchIDs, db) + incoming
            let currentCompleteness = try String.fetchOne(
                db.cachedStatement(sql: "SELECT value FROM trace_tags WHERE request_id = ? AND key = ?"),
                arguments: [trace.requestID, TraceDerivation.completenessTag])
            let derived = TraceDerivation.derive(
                spans: facts, resources: try resources(for: facts, db),
                completeness: Completeness.merge(existing: currentCompleteness, incoming: trace.reason))
            try updateTraceInfo(requestID: trace.requestID, derived, db)
            try db.cachedStatement(sql: "DELETE FROM trace_tags WHERE request_id = ?").execute(arguments: [trace.requestID])
            try writeTagsAndMetadata(requestID: trace.requestID, derived, db)
            summary.tracesMerged += 1
            if StoreInstruments.Written.isSplit(trace.reason) { summary.tracesSplit += 1 }
        }
        summary.spansWritten += spans.count
    }

    // MARK: Experiments and resources

    /// An experiment id that arrives in a trace but is not in `experiments` is created, named after
    /// its id (or `<id> (stitch <n>)` when that name is taken).
    mutating func ensureExperiment(_ id: Int64, _ db: Database) throws -> Int64 {
        if knownExperiments.contains(id) { return id }
        let exists = try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM experiments WHERE experiment_id = ?)"),
            arguments: [id]) ?? false
        if !exists {
            var name = String(id)
            var attempt = 1
            while try Bool.fetchOne(
                db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM experiments WHERE workspace = 'default' AND name = ?)"),
                arguments: [name]) ?? false {
                attempt += 1
                name = "\(id) (stitch \(attempt))"
            }
            try db.cachedStatement(sql: """
                INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
                VALUES (?, ?, NULL, 'active', ?, ?)
                """).execute(arguments: [id, name, now, now])
        }
        knownExperiments.insert(id)
        return id
    }

    /// `key`: the resource's `canonicalJSON`.
    private mutating func resourceID(for resource: StoredResource, key: String, _ db: Database) throws -> Int64 {
        if let known = resourceIDs[key] { return known }
        try db.cachedStatement(sql: """
            INSERT INTO stitch_resources (attributes, service_name) VALUES (?, ?) ON CONFLICT (attributes) DO NOTHING
            """).execute(arguments: [key, resource.serviceName])
        guard let id = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT resource_id FROM stitch_resources WHERE attributes = ?"), arguments: [key]) else {
            throw StoreError("could not record a resource in stitch_resources")
        }
        resourceIDs[key] = id
        resourcesByID[id] = resource
        return id
    }

    private mutating func resources(for facts: [SpanFacts], _ db: Database) throws -> [Int64: StoredResource] {
        var result: [Int64: StoredResource] = [:]
        for id in Set(facts.compactMap(\.resourceID)) {
            if let known = resourcesByID[id] {
                result[id] = known
            } else if let text = try String.fetchOne(
                db.cachedStatement(sql: "SELECT attributes FROM stitch_resources WHERE resource_id = ?"), arguments: [id]),
                let resource = StoredResource(canonicalJSON: text) {
                resourcesByID[id] = resource
                result[id] = resource
            }
        }
        return result
    }

    // MARK: Rows

    /// `resourceIDs`: the stored id of each of the trace's resources (`PreparedSpan.resourceIndex`).
    private func upsert(_ spans: [PreparedSpan], resourceIDs: [Int64], requestID: String, experimentID: Int64,
                        _ db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            INSERT INTO spans (\(StoreTables.spanColumns.joined(separator: ", ")))
            VALUES (\(Array(repeating: "?", count: StoreTables.spanColumns.count).joined(separator: ", ")))
            \(StoreTables.spanUpsert)
            """)
        // Each span is lent, not copied: `for span in spans` retained and released every string and
        // buffer of every row (7 % of the writer thread's samples in a profile of an end-to-end run).
        for index in spans.indices {
            try insert(spans[index], resourceID: spans[index].resourceIndex.map { resourceIDs[$0] },
                       requestID: requestID, experimentID: experimentID, statement, db)
        }
    }

    private func insert(_ span: borrowing PreparedSpan, resourceID: Int64?, requestID: String, experimentID: Int64,
                        _ statement: Statement, _ db: Database) throws {
        try Self.insert(span.row, requestID: requestID, experimentID: experimentID, resourceID: .some(resourceID), statement, db)
    }

    /// Binds one span row to `statement` (the upsert over `StoreTables.spanColumns`, or over
    /// `MLflowSpanColumns.names` when `resourceID` is `.none`) and runs it.
    static func insert(_ row: borrowing SpanRow, requestID: String, experimentID: Int64, resourceID: Int64??,
                       _ statement: Statement, _ db: Database) throws {
        let handle = statement.sqliteStatement
        // Bound with SQLite's C API: through GRDB's argument arrays every column became a boxed
        // value and the content was copied twice more (measured ~15 % of a span's write).
        var binder = RowBinder(statement: handle)
        binder.text(requestID)
        binder.int(experimentID)
        binder.text(row.spanID)
        binder.text(row.parentSpanID)
        binder.text(row.name)
        binder.text(row.type)
        binder.text(row.status)
        binder.int(row.startTimeUnixNano)
        binder.int(row.endTimeUnixNano)
        let contentColumn = binder.skip()
        binder.double(row.inputCost)
        binder.double(row.outputCost)
        binder.double(row.totalCost)
        binder.text(row.modelName)
        binder.text(row.modelProvider)
        if case .some(let resourceID) = resourceID { binder.int(resourceID) }
        try row.content.withUnsafeBufferPointer { content in
            // SQLITE_STATIC: the buffer outlives the step; the statement is reset right after.
            sqlite3_bind_text(handle, contentColumn, content.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) },
                              Int32(content.count), nil)
            try binder.step(statement, db)
        }
    }

    /// The trace's rows of `stitch_trace_links` (most traces have none).
    static func writeLinks(_ links: [TraceLink], _ db: Database) throws {
        guard !links.isEmpty else { return }
        let statement = try db.cachedStatement(sql: """
            INSERT INTO stitch_trace_links (\(TraceLink.columns.joined(separator: ", "))) VALUES (?, ?, ?, ?) \(TraceLink.upsert)
            """)
        for link in links {
            var binder = RowBinder(statement: statement.sqliteStatement)
            binder.text(link.requestID)
            binder.text(link.spanID)
            binder.text(link.linkedRequestID)
            binder.text(link.endpointName)
            try binder.step(statement, db)
        }
    }

    /// The facts of a trace's stored spans. Content is read (and parsed) only where the derivation
    /// needs attributes: the root, and spans that mention usage, cost, session or user keys.
    private func storedFacts(requestID: String, excluding: Set<SpanID>, _ db: Database) throws -> [SpanFacts] {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: Self.storedFactsSQL), arguments: [requestID])
        var facts: [SpanFacts] = []
        while let row = try rows.next() {
            guard let fact = SpanFacts(
                storedSpanID: row["span_id"], parentSpanID: row["parent_span_id"],
                startTimeUnixNano: row["start_time_unix_nano"], endTimeUnixNano: row["end_time_unix_nano"],
                status: row["status"], resourceID: row["stitch_resource_id"], content: row["content"]),
                !excluding.contains(fact.spanID) else { continue }
            facts.append(fact)
        }
        return facts
    }

    private static let storedFactsSQL = """
        SELECT span_id, parent_span_id, start_time_unix_nano, end_time_unix_nano, status, stitch_resource_id,
            CASE WHEN parent_span_id IS NULL
                \(SpanFacts.contentKeysForMerge.map { "OR instr(content, '\"\($0)\"') > 0" }.joined(separator: " "))
            THEN content END AS content
        FROM spans WHERE trace_id = ?
        """

    private static let traceInfoValueColumns = StoreTables.traceInfoValueColumns.joined(separator: ", ")

    /// Binds the `traceInfoValueColumns` of a trace, in their order.
    static func bindTraceInfoValues(_ derived: some TraceInfoValues, _ binder: inout RowBinder) {
        binder.int(derived.timestampMs)
        binder.int(derived.executionTimeMs)
        binder.text(derived.status)
        binder.text(derived.requestPreview)
        binder.text(derived.responsePreview)
        binder.text(derived.traceName)
        binder.text(derived.sessionID)
        for key in TokenUsage.allKeys { binder.int(derived.tokenUsage[key]) }
        for key in TraceCost.keys { binder.double(derived.cost[key]) }
    }

    /// Inserts the trace's row unless its id is stored; true when it inserted.
    static func insertTraceInfoIfNew(requestID: String, experimentID: Int64, _ derived: DerivedTrace,
                                      _ db: Database) throws -> Bool {
        // db_payload_generation counts the writes of span data, as MLflow's log_spans bumps it.
        let statement = try db.cachedStatement(sql: """
            INSERT INTO trace_info (request_id, experiment_id, db_payload_generation, \(Self.traceInfoValueColumns))
            VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (request_id) DO NOTHING
            """)
        // Bound with SQLite's C API, as the span rows: GRDB's argument array boxes every value.
        var binder = RowBinder(statement: statement.sqliteStatement)
        binder.text(requestID)
        binder.int(experimentID)
        Self.bindTraceInfoValues(derived, &binder)
        try binder.step(statement, db)
        return db.changesCount == 1
    }

    private func updateTraceInfo(requestID: String, _ derived: DerivedTrace, _ db: Database) throws {
        let statement = try db.cachedStatement(sql: """
            UPDATE trace_info SET db_payload_generation = db_payload_generation + 1,
                \(StoreTables.traceInfoValueColumns.map { "\($0) = ?" }.joined(separator: ", "))
            WHERE request_id = ?
            """)
        var binder = RowBinder(statement: statement.sqliteStatement)
        Self.bindTraceInfoValues(derived, &binder)
        binder.text(requestID)
        try binder.step(statement, db)
    }

    private func writeTagsAndMetadata(requestID: String, _ derived: DerivedTrace, _ db: Database) throws {
        let tag = try db.cachedStatement(sql: """
            INSERT INTO trace_tags (key, value, request_id) VALUES (?, ?, ?)
            ON CONFLICT (request_id, key) DO UPDATE SET value = excluded.value
            """)
        for (key, value) in derived.tags {
            var binder = RowBinder(statement: tag.sqliteStatement)
            binder.text(key)
            binder.text(value)
            binder.text(requestID)
            try binder.step(tag, db)
        }
        if let user = derived.userID {
            try db.cachedStatement(sql: """
                INSERT INTO trace_request_metadata (key, value, request_id) VALUES (?, ?, ?)
                ON CONFLICT (request_id, key) DO UPDATE SET value = excluded.value
                """).execute(arguments: [TraceMetadataKeys.user, user, requestID])
        }
    }
}

/// Binds one row's values to a prepared statement, column after column, with SQLite's C API, and
/// runs it.
/// Texts are copied by SQLite (SQLITE_TRANSIENT); nil binds NULL.
struct RowBinder {
    let statement: OpaquePointer
    private var column: Int32 = 0
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(statement: OpaquePointer) { self.statement = statement }

    /// The next column's index, left for the caller to bind.
    mutating func skip() -> Int32 {
        column += 1
        return column
    }

    mutating func text(_ value: String?) {
        column += 1
        guard var value else {
            sqlite3_bind_null(statement, column)
            return
        }
        value.withUTF8 { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else {
                // An empty text, not NULL (a nil pointer would bind NULL).
                sqlite3_bind_text(statement, column, "", 0, Self.transient)
                return
            }
            sqlite3_bind_text(statement, column, UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self),
                              Int32(bytes.count), Self.transient)
        }
    }

    mutating func int(_ value: Int64?) {
        column += 1
        if let value { sqlite3_bind_int64(statement, column, value) } else { sqlite3_bind_null(statement, column) }
    }

    mutating func double(_ value: Double?) {
        column += 1
        if let value { sqlite3_bind_double(statement, column, value) } else { sqlite3_bind_null(statement, column) }
    }

    /// Runs the statement once with the bound values, then resets it and clears its bindings.
    func step(_ owner: Statement, _ db: Database) throws {
        _ = try step(owner, db, firstInteger: false)
    }

    /// Runs a query with the bound values: the first column of its first row as an integer, nil
    /// when it returns no row.
    func firstInteger(_ owner: Statement, _ db: Database) throws -> Int64? {
        try step(owner, db, firstInteger: true)
    }

    private func step(_ owner: Statement, _ db: Database, firstInteger: Bool) throws -> Int64? {
        let code = sqlite3_step(statement)
        let value = firstInteger && code == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : nil
        let succeeded = code == SQLITE_DONE || (firstInteger && code == SQLITE_ROW)
        let message = succeeded ? nil : String(cString: sqlite3_errmsg(db.sqliteConnection))
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        if let message {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: owner.sql)
        }
        return value
    }
}
