import TraceModel

/// The store's tables on PostgreSQL: the same tables, columns, keys and indexes as the SQLite store
/// (`StoreTables`), in PostgreSQL's types. Differences: `stitch_resources.attributes` is unique
/// through `attributes_hash` (md5 of the text: a B-tree entry holds ~2.7 kB, and a resource's
/// attributes can be longer); the spans, tags and metadata rows declare no foreign keys (SQLite
/// declares them and leaves them unchecked; here they would be checked, see `StoreTables.ddl`).
///
/// The schema is created under an advisory lock, so that several Stitch instances starting at once
/// on an empty database create it once; `stitch_migrations` records what was applied, so that a
/// store made by an earlier Stitch gets only the later migrations.
enum PostgresSchema {
    /// `pg_advisory_xact_lock` key of schema creation ("stitch" in ASCII).
    static let lockKey: Int64 = 0x73_74_69_74_63_68

    static let migrations = StoreTables.migrations(.postgres)
}
