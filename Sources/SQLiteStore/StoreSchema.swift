import TraceModel
import GRDB

/// The store's tables: MLflow's trace tables (schema revision `f4a9b2c7d1e6`, mlflow.md "MLflow's
/// trace tables") with their columns, types and keys unchanged, plus Stitch's `stitch_resources`
/// and one nullable column on `spans` that names each span's resource (its service).
///
/// Secondary indexes are chosen by the queries Stitch serves, not copied from MLflow: every index on
/// `spans` costs write throughput (DESIGN.md: PK only ~127k rows/s vs ~68k with MLflow's five
/// indexes), and spans are by far the largest table.
/// - `trace_info (experiment_id, timestamp_ms, request_id)`: search in one experiment, newest
///   first, with keyset pagination on (timestamp_ms, request_id) read straight off the index
///   (MLflow's index has no request_id, so equal timestamps would need a sort).
/// - `trace_info (timestamp_ms, request_id)` (MLflow's): the same search over every experiment.
/// - `trace_info (experiment_id, session_id)` (MLflow's): `trace.session_id = …`.
/// - `trace_tags` / `trace_request_metadata` primary key `(request_id, key)` (MLflow's key set, with
///   the trace first so that a trace's tags are one range): tag filters run as an EXISTS probe per
///   candidate trace, and reads fetch a page's tags by trace. MLflow's extra `request_id` index is
///   a prefix of this key and is left out.
/// - `spans`: the primary key `(trace_id, span_id)` only. Reading a trace and the `span.name` /
///   `span.type` EXISTS probes are ranges of that key; MLflow's four experiment-wide span indexes
///   serve span analytics that Stitch does not offer, so they are left out for write speed.
enum StoreSchema {
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("stitch-v1") { db in
            for statement in v1 { try db.execute(sql: statement) }
        }
        return migrator
    }()

    static let v1: [String] = [
        """
        CREATE TABLE IF NOT EXISTS experiments (
            experiment_id INTEGER NOT NULL,
            name VARCHAR(256) NOT NULL,
            workspace VARCHAR(63) NOT NULL DEFAULT 'default',
            artifact_location VARCHAR(256),
            lifecycle_stage VARCHAR(32) DEFAULT 'active',
            creation_time BIGINT,
            last_update_time BIGINT,
            CONSTRAINT experiment_pk PRIMARY KEY (experiment_id),
            CONSTRAINT uq_experiments_workspace_name UNIQUE (workspace, name),
            CONSTRAINT experiments_lifecycle_stage CHECK (lifecycle_stage IN ('active', 'deleted'))
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS trace_info (
            request_id VARCHAR(50) NOT NULL,
            experiment_id INTEGER NOT NULL,
            timestamp_ms BIGINT NOT NULL,
            execution_time_ms BIGINT,
            status VARCHAR(50) NOT NULL,
            client_request_id VARCHAR(50),
            request_preview VARCHAR(1000),
            response_preview VARCHAR(1000),
            db_payload_generation INTEGER NOT NULL DEFAULT 0,
            trace_name VARCHAR(4096),
            session_id VARCHAR(250),
            input_tokens BIGINT,
            output_tokens BIGINT,
            total_tokens BIGINT,
            cache_read_input_tokens BIGINT,
            cache_creation_input_tokens BIGINT,
            cache_creation_input_tokens_above_1hr BIGINT,
            input_cost FLOAT,
            output_cost FLOAT,
            total_cost FLOAT,
            CONSTRAINT trace_info_pk PRIMARY KEY (request_id),
            CONSTRAINT fk_trace_info_experiment_id FOREIGN KEY (experiment_id)
                REFERENCES experiments (experiment_id) ON DELETE CASCADE
        )
        """,
        """
        CREATE INDEX IF NOT EXISTS index_trace_info_experiment_id_timestamp_ms
            ON trace_info (experiment_id, timestamp_ms, request_id)
        """,
        """
        CREATE INDEX IF NOT EXISTS index_trace_info_timestamp_ms_request_id
            ON trace_info (timestamp_ms, request_id)
        """,
        """
        CREATE INDEX IF NOT EXISTS index_trace_info_experiment_id_session_id
            ON trace_info (experiment_id, session_id)
        """,
        """
        CREATE TABLE IF NOT EXISTS trace_tags (
            key VARCHAR(250) NOT NULL,
            value VARCHAR(8000),
            request_id VARCHAR(50) NOT NULL,
            CONSTRAINT trace_tag_pk PRIMARY KEY (request_id, key),
            FOREIGN KEY (request_id) REFERENCES trace_info (request_id) ON DELETE CASCADE
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS trace_request_metadata (
            key VARCHAR(250) NOT NULL,
            value VARCHAR(8000),
            request_id VARCHAR(50) NOT NULL,
            CONSTRAINT trace_request_metadata_pk PRIMARY KEY (request_id, key),
            FOREIGN KEY (request_id) REFERENCES trace_info (request_id) ON DELETE CASCADE
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS stitch_resources (
            resource_id INTEGER PRIMARY KEY,
            attributes TEXT NOT NULL UNIQUE,
            service_name TEXT
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS spans (
            trace_id VARCHAR(50) NOT NULL,
            experiment_id INTEGER NOT NULL,
            span_id VARCHAR(50) NOT NULL,
            parent_span_id VARCHAR(50),
            name TEXT,
            type VARCHAR(500),
            status VARCHAR(50) NOT NULL,
            start_time_unix_nano BIGINT NOT NULL,
            end_time_unix_nano BIGINT,
            duration_ns BIGINT GENERATED ALWAYS AS (end_time_unix_nano - start_time_unix_nano) STORED,
            content TEXT NOT NULL,
            input_cost FLOAT,
            output_cost FLOAT,
            total_cost FLOAT,
            model_name VARCHAR(500),
            model_provider VARCHAR(500),
            stitch_resource_id INTEGER REFERENCES stitch_resources (resource_id),
            CONSTRAINT spans_pk PRIMARY KEY (trace_id, span_id),
            CONSTRAINT fk_spans_trace_id FOREIGN KEY (trace_id) REFERENCES trace_info (request_id) ON DELETE CASCADE,
            CONSTRAINT fk_spans_experiment_id FOREIGN KEY (experiment_id) REFERENCES experiments (experiment_id)
        )
        """,
    ]

    /// Tables a database must have to be read as a Stitch store.
    static let requiredTables = ["experiments", "trace_info", "trace_tags", "trace_request_metadata", "spans", "stitch_resources"]
}
