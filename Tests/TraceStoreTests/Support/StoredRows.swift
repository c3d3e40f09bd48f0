import Foundation
import GRDB
@testable import SQLiteStore
@testable import TraceModel

/// The raw rows MLflow wrote for fixture 03 (`13-…sql-rows.json`), and the same rows read from a
/// Stitch store, in one comparable shape.
struct StoredRows: Decodable {
    var trace_info: [TraceInfoRow]
    var trace_tags: [TagRow]
    var trace_request_metadata: [TagRow]
    var spans: [SpanRowValues]

    struct TraceInfoRow: Decodable, Equatable {
        var request_id: String
        var experiment_id: Int64
        var timestamp_ms: Int64
        var execution_time_ms: Int64?
        var status: String
        var client_request_id: String?
        var request_preview: String?
        var response_preview: String?
        var db_payload_generation: Int64
        var trace_name: String?
        var session_id: String?
        var input_tokens: Int64?
        var output_tokens: Int64?
        var total_tokens: Int64?
        var cache_read_input_tokens: Int64?
        var cache_creation_input_tokens: Int64?
        var cache_creation_input_tokens_above_1hr: Int64?
        var input_cost: Double?
        var output_cost: Double?
        var total_cost: Double?
    }

    struct TagRow: Decodable, Equatable, Hashable {
        var key: String
        var value: String?
        var request_id: String
    }

    struct SpanRowValues: Decodable, Equatable {
        var trace_id: String
        var experiment_id: Int64
        var span_id: String
        var parent_span_id: String?
        var name: String?
        var type: String?
        var status: String
        var start_time_unix_nano: Int64
        var end_time_unix_nano: Int64?
        var duration_ns: Int64?
        var content: String
        var input_cost: Double?
        var output_cost: Double?
        var total_cost: Double?
        var model_name: String?
        var model_provider: String?
    }

    static func fixture() throws -> StoredRows {
        try JSONDecoder().decode(StoredRows.self, from: Fixtures.data(Fixtures.storedRows))
    }

    /// Reads the same tables from a Stitch store (spans by start time, as the fixture lists them).
    static func read(_ store: SQLiteTraceStore, requestID: String) throws -> StoredRows {
        try store.pool.read { db in
            let info = try Row.fetchAll(db, sql: "SELECT * FROM trace_info WHERE request_id = ?", arguments: [requestID]).map { row in
                TraceInfoRow(
                    request_id: row["request_id"], experiment_id: row["experiment_id"], timestamp_ms: row["timestamp_ms"],
                    execution_time_ms: row["execution_time_ms"], status: row["status"], client_request_id: row["client_request_id"],
                    request_preview: row["request_preview"], response_preview: row["response_preview"],
                    db_payload_generation: row["db_payload_generation"], trace_name: row["trace_name"], session_id: row["session_id"],
                    input_tokens: row["input_tokens"], output_tokens: row["output_tokens"], total_tokens: row["total_tokens"],
                    cache_read_input_tokens: row["cache_read_input_tokens"],
                    cache_creation_input_tokens: row["cache_creation_input_tokens"],
                    cache_creation_input_tokens_above_1hr: row["cache_creation_input_tokens_above_1hr"],
                    input_cost: row["input_cost"], output_cost: row["output_cost"], total_cost: row["total_cost"])
            }
            func tags(_ table: String) throws -> [TagRow] {
                try Row.fetchAll(db, sql: "SELECT key, value, request_id FROM \(table) WHERE request_id = ?", arguments: [requestID]).map {
                    TagRow(key: $0["key"], value: $0["value"], request_id: $0["request_id"])
                }
            }
            let spans = try Row.fetchAll(db, sql: "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time_unix_nano",
                                         arguments: [requestID]).map { row in
                SpanRowValues(
                    trace_id: row["trace_id"], experiment_id: row["experiment_id"], span_id: row["span_id"],
                    parent_span_id: row["parent_span_id"], name: row["name"], type: row["type"], status: row["status"],
                    start_time_unix_nano: row["start_time_unix_nano"], end_time_unix_nano: row["end_time_unix_nano"],
                    duration_ns: row["duration_ns"], content: row["content"], input_cost: row["input_cost"],
                    output_cost: row["output_cost"], total_cost: row["total_cost"], model_name: row["model_name"],
                    model_provider: row["model_provider"])
            }
            return StoredRows(trace_info: info, trace_tags: try tags("trace_tags"),
                              trace_request_metadata: try tags("trace_request_metadata"), spans: spans)
        }
    }

    /// Tags by key, without the ones only MLflow (artifact location) or only Stitch (`stitch.*`) writes.
    var comparableTags: [String: String?] {
        var result: [String: String?] = [:]
        for tag in trace_tags where tag.key != "mlflow.artifactLocation" && !tag.key.hasPrefix("stitch.") {
            result[tag.key] = tag.value
        }
        return result
    }

    func tag(_ key: String) -> String? { trace_tags.first { $0.key == key }?.value ?? nil }
}
