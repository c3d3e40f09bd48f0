import TraceModel
import Foundation
import GRDB

extension SQLiteTraceStore {
    /// Page size bounds for `search`.
    package static let maximumSearchResults = TraceSearchStatement.maximumResults

    /// Searches `trace_info` newest first (`timestamp_ms` descending, then `request_id` descending),
    /// at most `maxResults` per page (clamped to 1…1000). `pageToken` continues after the last
    /// trace of the previous page (a keyset, so traces written meanwhile neither repeat nor shift
    /// the pages). Throws `FilterError` for a filter that does not parse.
    ///
    /// Filters (MLflow's syntax): `tag.<key> = '<v>'` / `!=` (also `tags.`, backquoted keys),
    /// `metadata.<key>`, `status = 'OK' | 'ERROR' | 'IN_PROGRESS'`, `timestamp_ms` and
    /// `execution_time_ms` with `= != < <= > >=`, `trace.session_id`, `trace.name`, and
    /// `span.name` / `span.type` / `span.status` (some span matches), joined by `AND`.
    package func search(_ query: TraceQuery) throws -> TraceSearchPage {
        let statement = try TraceSearchStatement(query)
        return try pool.read { db in try Self.search(statement, db) }
    }

    package func searchTraces(_ query: TraceQuery) async throws -> TraceSearchPage {
        let statement = try TraceSearchStatement(query)
        return try await pool.read { db in try Self.search(statement, db) }
    }

    private static func search(_ statement: TraceSearchStatement, _ db: Database) throws -> TraceSearchPage {
        let arguments = StatementArguments(statement.arguments.map { argument -> (any DatabaseValueConvertible)? in
            switch argument {
            case .string(let value): return value
            case .integer(let value): return value
            }
        })
        var rows = try Row.fetchAll(db, sql: statement.sql, arguments: arguments)
        let hasMore = rows.count > statement.limit
        if hasMore { rows.removeLast(rows.count - statement.limit) }
        return statement.page(try TraceInfoRows.records(rows, db), hasMore: hasMore)
    }

    /// The trace and its spans (ordered by start time, each with the service that sent it), or nil
    /// when no such trace is stored. `id` is `tr-<32 hex>`.
    package func trace(id: String) throws -> StoredTrace? {
        try pool.read { db in try Self.trace(id: id, db) }
    }

    package func storedTrace(id: String) async throws -> StoredTrace? {
        try await pool.read { db in try Self.trace(id: id, db) }
    }

    private static func trace(id: String, _ db: Database) throws -> StoredTrace? {
        guard let row = try Row.fetchOne(
            db, sql: "SELECT \(TraceInfoColumns.select) FROM trace_info ti WHERE ti.request_id = ?", arguments: [id]),
            let info = try TraceInfoRows.records([row], db).first else { return nil }
        let spans = try Row.fetchAll(db, sql: """
            SELECT s.span_id, s.parent_span_id, s.name, s.type, s.status, s.start_time_unix_nano,
                s.end_time_unix_nano, r.service_name, s.content
            FROM spans s LEFT JOIN stitch_resources r ON r.resource_id = s.stitch_resource_id
            WHERE s.trace_id = ?
            ORDER BY s.start_time_unix_nano, s.span_id
            """, arguments: [id]).map { row in
            StoredSpan(spanID: row["span_id"], parentSpanID: row["parent_span_id"], name: row["name"] ?? "",
                       type: row["type"], status: row["status"], startTimeUnixNano: row["start_time_unix_nano"],
                       endTimeUnixNano: row["end_time_unix_nano"] ?? 0, serviceName: row["service_name"],
                       content: row["content"])
        }
        // A store made before links were kept, opened read-only, has no such table yet.
        guard try db.tableExists("stitch_trace_links") else { return StoredTrace(info: info, spans: spans) }
        let links = try Row.fetchAll(db, sql: TraceLink.selectBothWays(placeholder: "?", "?"), arguments: [id, id]).map { row in
            TraceLink(requestID: row[0], spanID: row[1], linkedRequestID: row[2], endpointName: row[3])
        }
        return StoredTrace(info: info, spans: spans, links: links)
    }
}

/// Reading `trace_info` rows (selected as `TraceInfoColumns.select`) with their tags and metadata.
enum TraceInfoRows {
    static func records(_ rows: [Row], _ db: Database) throws -> [TraceInfoRecord] {
        guard !rows.isEmpty else { return [] }
        let ids: [String] = rows.map { $0["request_id"] }
        let placeholders = Array(repeating: "?", count: ids.count).joined(separator: ", ")
        let arguments = StatementArguments(ids.map { $0 as (any DatabaseValueConvertible)? })
        var tags: [String: [String: String]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT request_id, key, value FROM trace_tags WHERE request_id IN (\(placeholders))",
                                     arguments: arguments) {
            tags[row["request_id"], default: [:]][row["key"]] = row["value"] ?? ""
        }
        var metadata: [String: [String: String]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT request_id, key, value FROM trace_request_metadata WHERE request_id IN (\(placeholders))",
                                     arguments: arguments) {
            metadata[row["request_id"], default: [:]][row["key"]] = row["value"] ?? ""
        }
        return rows.map { row in
            var usage: [String: Int64] = [:]
            for key in TokenUsage.allKeys { if let count: Int64 = row[key] { usage[key] = count } }
            var cost: [String: Double] = [:]
            for key in TraceCost.keys { if let amount: Double = row[key] { cost[key] = amount } }
            let columns = TraceInfoColumns(
                requestID: row["request_id"], experimentID: row["experiment_id"], timestampMs: row["timestamp_ms"],
                executionTimeMs: row["execution_time_ms"], status: row["status"], requestPreview: row["request_preview"],
                responsePreview: row["response_preview"], traceName: row["trace_name"], sessionID: row["session_id"],
                tokenUsage: usage, cost: cost)
            return columns.record(tags: tags[columns.requestID] ?? [:], metadata: metadata[columns.requestID] ?? [:])
        }
    }
}
