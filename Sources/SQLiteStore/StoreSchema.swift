import TraceModel
import GRDB

/// The store's tables in SQLite (`StoreTables`: MLflow's trace tables with their columns, types and
/// keys unchanged, plus Stitch's `stitch_resources` and one nullable column on `spans` that names
/// each span's resource, its service).
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
/// - `stitch_trace_links`: primary key `(request_id, span_id)` (a trace's calls are one range) and
///   `(linked_request_id)` (who called a trace).
enum StoreSchema {
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        for migration in StoreTables.migrations(.sqlite) {
            migrator.registerMigration(migration.identifier) { db in
                for statement in migration.statements { try db.execute(sql: statement) }
            }
        }
        return migrator
    }()

    /// Tables a database must have to be read as a Stitch store.
    static let requiredTables = StoreTables.required
}
