import TraceModel
import Foundation
import GRDB

extension SQLiteTraceStore {
    /// Page size bounds for `search`.
    package static let maximumSearchResults = 1000

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
        let filter = try TraceFilter.parse(query.filter ?? "")
        var clauses = filter.clauses
        var values: [(any DatabaseValueConvertible)?] = filter.arguments.map { argument in
            switch argument {
            case .string(let value): return value
            case .integer(let value): return value
            }
        }
        var experimentIDs: [Int64] = []
        for id in query.experimentIDs {
            guard let number = Int64(id) else { throw StoreError("experiment ids are integers, got '\(id)'") }
            experimentIDs.append(number)
        }
        if !experimentIDs.isEmpty {
            clauses.insert("ti.experiment_id IN (\(Array(repeating: "?", count: experimentIDs.count).joined(separator: ", ")))", at: 0)
            values.insert(contentsOf: experimentIDs.map { $0 as (any DatabaseValueConvertible)? }, at: 0)
        }
        let fingerprint = PageToken.fingerprint(experimentIDs: experimentIDs, filter: query.filter ?? "")
        if let token = query.pageToken {
            let position = try PageToken.decode(token, fingerprint: fingerprint)
            clauses.append("(ti.timestamp_ms, ti.request_id) < (?, ?)")
            values += [position.timestampMs, position.requestID]
        }
        let arguments = StatementArguments(values)
        let limit = min(max(query.maxResults, 1), Self.maximumSearchResults)
        let sql = """
            SELECT \(TraceInfoColumns.select) FROM trace_info ti
            \(clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND "))
            ORDER BY ti.timestamp_ms DESC, ti.request_id DESC
            LIMIT \(limit + 1)
            """
        return try pool.read { db in
            var rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            var nextPageToken: String?
            if rows.count > limit {
                rows.removeLast(rows.count - limit)
                let last = rows[rows.count - 1]
                nextPageToken = PageToken.encode(timestampMs: last["timestamp_ms"], requestID: last["request_id"],
                                                 fingerprint: fingerprint)
            }
            let traces = try TraceInfoColumns.records(rows, db)
            return TraceSearchPage(traces: traces, nextPageToken: nextPageToken)
        }
    }

    /// The trace and its spans (ordered by start time, each with the service that sent it), or nil
    /// when no such trace is stored. `id` is `tr-<32 hex>`.
    package func trace(id: String) throws -> StoredTrace? {
        try pool.read { db in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT \(TraceInfoColumns.select) FROM trace_info ti WHERE ti.request_id = ?", arguments: [id]),
                let info = try TraceInfoColumns.records([row], db).first else { return nil }
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
            return StoredTrace(info: info, spans: spans)
        }
    }
}

/// Reading `trace_info` rows into `TraceInfoRecord`s as MLflow's `SqlTraceInfo.to_mlflow_entity`
/// does: `mlflow.traceName` comes from its column, and the session, token usage and cost columns
/// appear as their metadata keys.
enum TraceInfoColumns {
    static let select = """
        ti.request_id, ti.experiment_id, ti.timestamp_ms, ti.execution_time_ms, ti.status, ti.request_preview,
        ti.response_preview, ti.trace_name, ti.session_id, ti.input_tokens, ti.output_tokens, ti.total_tokens,
        ti.cache_read_input_tokens, ti.cache_creation_input_tokens, ti.cache_creation_input_tokens_above_1hr,
        ti.input_cost, ti.output_cost, ti.total_cost
        """

    static func records(_ rows: [Row], _ db: Database) throws -> [TraceInfoRecord] {
        guard !rows.isEmpty else { return [] }
        let ids: [String] = rows.map { $0["request_id"] }
        let placeholders = Array(repeating: "?", count: ids.count).joined(separator: ", ")
        var tags: [String: [String: String]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT request_id, key, value FROM trace_tags WHERE request_id IN (\(placeholders))",
                                     arguments: StatementArguments(ids.map { $0 as (any DatabaseValueConvertible)? })) {
            tags[row["request_id"], default: [:]][row["key"]] = row["value"] ?? ""
        }
        var metadata: [String: [String: String]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT request_id, key, value FROM trace_request_metadata WHERE request_id IN (\(placeholders))",
                                     arguments: StatementArguments(ids.map { $0 as (any DatabaseValueConvertible)? })) {
            let key: String = row["key"]
            if TraceMetadataKeys.promoted.contains(key) { continue }
            metadata[row["request_id"], default: [:]][key] = row["value"] ?? ""
        }
        return rows.map { row in
            let requestID: String = row["request_id"]
            var traceTags = tags[requestID] ?? [:]
            if let name: String = row["trace_name"] { traceTags[MLflowKeys.traceName] = name }
            var traceMetadata = metadata[requestID] ?? [:]
            let sessionID: String? = row["session_id"]
            if let sessionID { traceMetadata[TraceMetadataKeys.session] = sessionID }
            var usage = PyObject()
            for key in TokenUsage.allKeys { if let count: Int64 = row[key] { usage[key] = .int(count) } }
            if !usage.isEmpty { traceMetadata[TraceMetadataKeys.tokenUsage] = PyJSONWriter.dump(.object(usage), ensureASCII: true) }
            var cost = PyObject()
            for key in TraceCost.keys { if let amount: Double = row[key] { cost[key] = .double(amount) } }
            if !cost.isEmpty { traceMetadata[TraceMetadataKeys.cost] = PyJSONWriter.dump(.object(cost), ensureASCII: true) }
            let experimentID: Int64 = row["experiment_id"]
            return TraceInfoRecord(
                requestID: requestID, experimentID: String(experimentID), timestampMs: row["timestamp_ms"],
                executionTimeMs: row["execution_time_ms"], status: row["status"], requestPreview: row["request_preview"],
                responsePreview: row["response_preview"], sessionID: sessionID, tags: traceTags, metadata: traceMetadata)
        }
    }
}

/// The opaque continuation of a search: the (timestamp_ms, request_id) of the last trace returned,
/// bound to the query it came from.
enum PageToken {
    struct Position: Equatable {
        var timestampMs: Int64
        var requestID: String
    }

    static func encode(timestampMs: Int64, requestID: String, fingerprint: String) -> String {
        let text = "v1:\(fingerprint):\(timestampMs):\(requestID)"
        return Data(text.utf8).base64EncodedString()
    }

    static func decode(_ token: String, fingerprint: String) throws -> Position {
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8) else {
            throw StoreError("invalid page token: not one this store issued")
        }
        let parts = text.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "v1", let timestamp = Int64(parts[2]), !parts[3].isEmpty else {
            throw StoreError("invalid page token: not one this store issued")
        }
        guard parts[1] == fingerprint else {
            throw StoreError("invalid page token: it belongs to a search with other experiments or another filter")
        }
        return Position(timestampMs: timestamp, requestID: String(parts[3]))
    }

    /// FNV-1a of the query's experiments and filter, so that a token is not used with another query.
    static func fingerprint(experimentIDs: [Int64], filter: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array((experimentIDs.map(String.init).joined(separator: ",") + "|" + filter).utf8) {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
