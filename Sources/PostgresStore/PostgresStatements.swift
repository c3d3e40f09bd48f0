import Logging
import PostgresNIO
import TraceModel

/// A statement of the writer, prepared once per connection (postgres-nio keeps the prepared
/// statement by name) and run with the whole batch's values as array parameters.
protocol BatchStatement: PostgresPreparedStatement where Row == PostgresRow {
    var bindings: PostgresBindings { get }
}

extension BatchStatement {
    func makeBindings() throws -> PostgresBindings { bindings }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

extension PostgresConnection {
    /// Runs a prepared statement and collects its rows (none for most writes).
    @discardableResult
    func run<Statement: BatchStatement>(_ statement: Statement, logger: Logger) async throws -> [PostgresRow] {
        var rows: [PostgresRow] = []
        for try await row in try await execute(statement, logger: logger) { rows.append(row) }
        return rows
    }
}

/// Array parameters in the order of a statement's `$n`.
func bindings(_ columns: ColumnArray...) -> PostgresBindings {
    var result = PostgresBindings(capacity: columns.count)
    for column in columns { result.append(column) }
    return result
}

enum Statements {
    /// `INSERT INTO experiments …` for ids not yet there; $1 ids, $2 now (ms).
    struct InsertExperiments: BatchStatement {
        static let sql = """
            INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
            SELECT id, id::text, NULL, 'active', now_ms, now_ms FROM unnest($1::bigint[], $2::bigint[]) AS u(id, now_ms)
            ON CONFLICT DO NOTHING
            """
        var bindings: PostgresBindings
    }

    /// `stitch_trace_links` rows: $1 request ids, $2 span ids, $3 linked request ids, $4 endpoint names.
    struct UpsertLinks: BatchStatement {
        static let sql = """
            INSERT INTO stitch_trace_links (\(TraceLink.columns.joined(separator: ", ")))
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \(TraceLink.upsert)
            """
        var bindings: PostgresBindings
    }

    /// The ids of $1 that exist.
    struct ExistingExperiments: BatchStatement {
        static let sql = "SELECT experiment_id::bigint FROM experiments WHERE experiment_id = ANY($1::bigint[])"
        var bindings: PostgresBindings
    }

    /// One experiment under a given name ($1 id, $2 name, $3 now); nothing when the name is taken.
    struct InsertNamedExperiment: BatchStatement {
        static let sql = """
            INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
            VALUES ($1, $2, NULL, 'active', $3, $3) ON CONFLICT DO NOTHING
            """
        var bindings: PostgresBindings
    }

    /// $1 attributes (canonical JSON), $2 service names.
    struct InsertResources: BatchStatement {
        static let sql = """
            INSERT INTO stitch_resources (attributes, service_name)
            SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (attributes_hash) DO NOTHING
            """
        var bindings: PostgresBindings
    }

    /// The ids of the resources whose attributes are in $1.
    struct ResourceIDs: BatchStatement {
        static let sql = """
            SELECT resource_id, attributes FROM stitch_resources
            WHERE attributes_hash = ANY(SELECT md5(a) FROM unnest($1::text[]) AS a)
            """
        var bindings: PostgresBindings
    }

    /// The attributes of the resources whose ids are in $1.
    struct ResourcesByID: BatchStatement {
        static let sql = "SELECT resource_id, attributes FROM stitch_resources WHERE resource_id = ANY($1::bigint[])"
        var bindings: PostgresBindings
    }

    static let traceInfoValueColumns = StoreTables.traceInfoValueColumns.joined(separator: ", ")

    /// PostgreSQL's type of each of `StoreTables.traceInfoValueColumns`, in order.
    static let traceInfoValueTypes = ["bigint", "bigint"] + Array(repeating: "text", count: 5)
        + Array(repeating: "bigint", count: TokenUsage.allKeys.count) + Array(repeating: "float8", count: TraceCost.keys.count)

    /// The array parameters of the value columns, numbered from `$first`.
    static func traceInfoValueArrays(from first: Int) -> String {
        traceInfoValueTypes.enumerated().map { "$\(first + $0.offset)::\($0.element)[]" }.joined(separator: ", ")
    }

    /// New traces: $1 request ids, $2 experiment ids, then the value columns. Returns the ids it inserted.
    struct InsertTraceInfo: BatchStatement {
        static let sql = """
            INSERT INTO trace_info (request_id, experiment_id, db_payload_generation, \(traceInfoValueColumns))
            SELECT request_id, experiment_id, 1, \(traceInfoValueColumns)
            FROM unnest($1::text[], $2::bigint[], \(traceInfoValueArrays(from: 3)))
                AS u(request_id, experiment_id, \(traceInfoValueColumns))
            ON CONFLICT (request_id) DO NOTHING
            RETURNING request_id
            """
        var bindings: PostgresBindings
    }

    /// Stored traces among $1, locked for this transaction (in id order: two writers merging the
    /// same traces wait for each other instead of deadlocking).
    struct LockStoredTraces: BatchStatement {
        static let sql = """
            SELECT request_id, experiment_id::bigint FROM trace_info WHERE request_id = ANY($1::text[])
            ORDER BY request_id FOR UPDATE
            """
        var bindings: PostgresBindings
    }

    /// Merged traces: $1 request ids, then the value columns.
    struct UpdateTraceInfo: BatchStatement {
        static let sql = """
            UPDATE trace_info t SET db_payload_generation = t.db_payload_generation + 1,
                \(StoreTables.traceInfoValueColumns.map { "\($0) = u.\($0)" }.joined(separator: ", "))
            FROM unnest($1::text[], \(traceInfoValueArrays(from: 2)))
                AS u(request_id, \(traceInfoValueColumns))
            WHERE t.request_id = u.request_id
            """
        var bindings: PostgresBindings
    }

    static let spanColumns = StoreTables.spanColumns.joined(separator: ", ")

    /// A span sent again replaces its row (MLflow's upsert by (trace_id, span_id)).
    struct UpsertSpans: BatchStatement {
        static let sql = """
            INSERT INTO spans (\(spanColumns))
            SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::bigint[], $9::bigint[], $10::text[], $11::float8[], $12::float8[], $13::float8[], $14::text[],
                $15::text[], $16::bigint[])
            \(StoreTables.spanUpsert)
            """
        var bindings: PostgresBindings
    }

    /// The stored spans of the traces in $1, with content only where a merge needs attributes.
    struct StoredFacts: BatchStatement {
        static let sql = """
            SELECT trace_id, span_id, parent_span_id, start_time_unix_nano, end_time_unix_nano, status, stitch_resource_id,
                CASE WHEN parent_span_id IS NULL
                    \(SpanFacts.contentKeysForMerge.map { "OR strpos(content, '\"\($0)\"') > 0" }.joined(separator: " "))
                THEN content END AS content
            FROM spans WHERE trace_id = ANY($1::text[])
            """
        var bindings: PostgresBindings
    }

    /// $1 request ids, $2 key: the tag's value per trace.
    struct TagValues: BatchStatement {
        static let sql = "SELECT request_id, value FROM trace_tags WHERE request_id = ANY($1::text[]) AND key = $2"
        var bindings: PostgresBindings
    }

    struct DeleteTags: BatchStatement {
        static let sql = "DELETE FROM trace_tags WHERE request_id = ANY($1::text[])"
        var bindings: PostgresBindings
    }

    /// $1 keys, $2 values, $3 request ids.
    struct UpsertTags: BatchStatement {
        static let sql = """
            INSERT INTO trace_tags (key, value, request_id) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
            ON CONFLICT (request_id, key) DO UPDATE SET value = excluded.value
            """
        var bindings: PostgresBindings
    }

    /// $1 keys, $2 values, $3 request ids.
    struct UpsertMetadata: BatchStatement {
        static let sql = """
            INSERT INTO trace_request_metadata (key, value, request_id) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
            ON CONFLICT (request_id, key) DO UPDATE SET value = excluded.value
            """
        var bindings: PostgresBindings
    }
}
