import TraceModel
import Foundation
import GRDB
import Logging
import Metrics
import OTLPWire
import TraceEdge

/// The embedded store, laid out like MLflow's trace tables (SQLite, WAL).
///
/// Writes go through GRDB's single writer connection (a serial queue of its own), one transaction
/// per `consume` call; reads use a pool of reader connections that WAL lets run beside the writer,
/// in this process or in another one (`readOnly`).
package final class SQLiteTraceStore: TraceStore {
    /// The database file.
    package let path: String
    package var location: String { path }
    let pool: DatabasePool
    /// Checkpoints beside the writer (nil for a read-only store, or when it could not open).
    private let checkpointer: WALCheckpointer?
    /// WAL frames after which the writer lets the WAL restart (`walRestartBytes` in pages).
    private let walRestartLimit: Int
    /// The writer's WAL size, kept up to date by SQLite after each commit.
    private let walFrames: WALFrames
    let defaultExperimentID: Int64
    let readOnly: Bool
    private let logger: Logger
    private let instruments: StoreInstruments

    /// How long a connection waits for a lock held by another connection before failing.
    static let busyTimeout: TimeInterval = 5
    /// Page cache of the writer connection (readers keep SQLite's default).
    static let writerCacheKiB = 64 * 1024
    /// WAL size after which the writer lets the WAL restart (see `WALCheckpointer`), or, when
    /// there is no checkpointer, checkpoints itself.
    static let walRestartBytes = 64 * 1024 * 1024
    /// Page size of a new store (an existing store keeps its own). With checkpoints beside the
    /// writer, 16 KiB pages were the fastest (stitch-bench-store: 41–51k spans/s at 4 KiB, 55k at
    /// 8 KiB, 61k at 16 KiB): a ~1.3 KiB span row packs eleven to a page instead of two to a 4 KiB
    /// page with a third left empty, so the file and the bytes written per span shrink by a quarter.
    /// 64 KiB pages win on a new store (end to end 55–56k vs 47–53k spans/s) and lose once it holds
    /// 2M spans (400k more: 32–36k vs 38–39k; 8 KiB 35k): each batch rewrites every leaf of the
    /// random-key indexes (spans, tags, trace_info) it touches, and those leaves are four times larger.
    static let newStorePageSize = 16 * 1024

    /// Opens (creating directories, schema and experiment `0` "Default" as needed).
    /// `readOnly` opens for queries while another process writes.
    package convenience init(path: String, defaultExperimentID: String = "0", readOnly: Bool = false,
                            logger: Logger = Logger(label: "stitch.store"), metrics: any MetricsFactory = MetricsSystem.factory) throws {
        try self.init(path: path, defaultExperimentID: defaultExperimentID, readOnly: readOnly, logger: logger,
                      metrics: metrics, walRestartBytes: Self.walRestartBytes, backgroundCheckpoints: true)
    }

    /// `walRestartBytes`: WAL size after which the writer lets the WAL restart;
    /// `backgroundCheckpoints`: whether a `WALCheckpointer` copies pages beside the writer.
    init(path: String, defaultExperimentID: String, readOnly: Bool, logger: Logger, metrics: any MetricsFactory,
         walRestartBytes: Int, backgroundCheckpoints: Bool) throws {
        guard let defaultExperiment = Int64(defaultExperimentID) else {
            throw StoreError("default experiment id must be an integer (MLflow experiment ids are), got '\(defaultExperimentID)'")
        }
        self.path = path
        self.defaultExperimentID = defaultExperiment
        self.readOnly = readOnly
        self.logger = logger
        instruments = StoreInstruments(metrics: metrics)

        var configuration = Configuration()
        configuration.label = "stitch.store"
        configuration.busyMode = .timeout(Self.busyTimeout)
        configuration.readonly = readOnly
        // The writer keeps the references itself (trace_info before its spans, experiments and
        // resources looked up first); SQLite's own checks cost three index probes per span row.
        configuration.foreignKeysEnabled = false
        let frames = WALFrames()
        walFrames = frames
        configuration.prepareDatabase { db in
            // WAL (set by DatabasePool) with synchronous=NORMAL: commits are durable against
            // process crashes; a power loss may lose the last transactions but never corrupts.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            if !db.configuration.readonly {
                // Takes effect only while the file is new (before WAL mode and the first table).
                try db.execute(sql: "PRAGMA page_size = \(Self.newStorePageSize)")
                // The writer inserts span rows under random trace ids all over the primary-key
                // B-tree; with SQLite's default 2 MiB page cache it re-reads those pages from the
                // file on almost every insert (measured: ~8 % of write CPU in pread).
                try db.execute(sql: "PRAGMA cache_size = -\(Self.writerCacheKiB)")
                // Replaces SQLite's automatic checkpoint (every 4 MB of WAL, on the writer's
                // thread): checkpoints run beside the writer, see `write(_:)`.
                if let connection = db.sqliteConnection { frames.install(on: connection) }
            }
        }

        if readOnly {
            guard FileManager.default.fileExists(atPath: path) else {
                throw StoreError("no data yet: there is no Stitch store at \(path) (a server creates it when it starts with this store path)")
            }
            checkpointer = nil
            walRestartLimit = 0
            do {
                pool = try DatabasePool(path: path, configuration: configuration)
                let missing = try pool.read { db in try StoreSchema.requiredTables.filter { try !db.tableExists($0) } }
                guard missing.isEmpty else {
                    throw StoreError("\(path) is not a Stitch store (missing tables: \(missing.joined(separator: ", ")))")
                }
            } catch let error as StoreError {
                throw error
            } catch {
                throw StoreError("cannot open the store at \(path) for reading: \(error)")
            }
            return
        }

        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw StoreError("cannot create the store's directory \(directory.path): \(error.localizedDescription)")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try StoreSchema.migrator.migrate(pool)
            checkpointer = backgroundCheckpoints ? WALCheckpointer(path: path) : nil
            let pageSize = try pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") } ?? 4096
            walRestartLimit = max(1, walRestartBytes / max(pageSize, 512))
            let nowMs = Self.nowMs()
            try pool.write { db in
                try db.execute(sql: """
                    INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
                    VALUES (0, 'Default', NULL, 'active', ?, ?) ON CONFLICT DO NOTHING
                    """, arguments: [nowMs, nowMs])
                var writer = StoreWriter(defaultExperimentID: defaultExperiment, nowMs: nowMs)
                _ = try writer.ensureExperiment(defaultExperiment, db)
            }
        } catch {
            throw StoreError("cannot open the store at \(path): \(error)")
        }
    }

    static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    /// Writes many finished traces in one transaction (new traces inserted, late fragments merged).
    /// Runs on GRDB's writer queue, never on the caller's event loop.
    package func consume(_ traces: [FinishedTrace]) async throws {
        try await instruments.consume(traces, logger: logger, location: path) { prepared in
            let summary = try await write(prepared)
            return .init(tracesInserted: summary.tracesInserted, tracesMerged: summary.tracesMerged, spans: summary.spansWritten,
                         tracesSplit: summary.tracesSplit)
        }
    }

    /// Closes the store's connections once the writes queued before this call are done. Nothing may
    /// use the store afterwards.
    package func close() async throws {
        // Every write is queued on the writer's serial queue: once this block runs, they are done.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pool.asyncWriteWithoutTransaction { _ in continuation.resume() }
        }
        checkpointer?.waitIdle()
        try pool.close()
    }

    /// Frees the connections' page caches (the writer's holds up to `writerCacheKiB` after a burst);
    /// reader connections close and reopen on the next query. Returns once the writer's is freed.
    package func releaseMemory() async {
        pool.releaseMemoryEventually()
        // The writer's release was queued on its serial queue above; this block runs after it.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pool.asyncWriteWithoutTransaction { _ in continuation.resume() }
        }
    }

    /// Writes prepared traces in one transaction on the writer queue.
    ///
    /// Uses GRDB's callback API rather than `write(_:) async`: that one gives up with
    /// `CancellationError` when the calling task is cancelled, and a trace that reached a sink
    /// during shutdown must still be written.
    func write(_ traces: [PreparedTrace]) async throws -> WriteSummary {
        guard !readOnly else { throw StoreError("the store at \(path) is open read-only") }
        guard !traces.isEmpty else { return WriteSummary() }
        let defaultExperimentID = defaultExperimentID
        let checkpointer = checkpointer
        let walRestartLimit = walRestartLimit
        let walFrames = walFrames
        return try await withCheckedThrowingContinuation { continuation in
            pool.asyncWriteWithoutTransaction { db in
                do {
                    if walFrames.count > walRestartLimit {
                        // Copy what the checkpointer has not yet; the next transaction then starts
                        // the WAL from the beginning (SQLite restarts it once every frame is copied).
                        checkpointer?.waitIdle()
                        _ = try? db.checkpoint(.passive)
                    }
                    var summary = WriteSummary()
                    try db.inTransaction(.immediate) {
                        var writer = StoreWriter(defaultExperimentID: defaultExperimentID, nowMs: Self.nowMs())
                        summary = try writer.write(traces, db)
                        return .commit
                    }
                    checkpointer?.committed()
                    continuation.resume(returning: summary)
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
