import Exporters
import Foundation
import Logging
import Metrics
import PostgresStore
import SQLiteStore
import TraceEdge
import TraceModel

/// Where and how the `mlflow_database` destination writes: a database MLflow created, named by
/// the URI a user gives `mlflow server --backend-store-uri`.
package struct MLflowDatabaseConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// `sqlite:////absolute/path/mlflow.db`, `sqlite:///relative/path.db`, or
    /// `postgresql[+driver]://user@host:5432/name`.
    package var uri: String
    /// The experiment for traces that name none (or for every trace, when `experimentFromTrace`
    /// is false). Nil means MLflow's default experiment, "0".
    package var experimentID: String?
    /// Each trace goes to the experiment its requests named (`x-mlflow-experiment-id`), else to
    /// `experimentID`. Default true.
    package var experimentFromTrace: Bool

    package init(uri: String, experimentID: String? = nil, experimentFromTrace: Bool = true) {
        self.uri = uri
        self.experimentID = experimentID
        self.experimentFromTrace = experimentFromTrace
    }

    /// The database the URI names.
    package enum Database: Sendable, Equatable {
        case sqlite(path: String)
        case postgres(PostgresURL)
    }

    /// Parses `uri` as SQLAlchemy does for the two backends Stitch writes.
    package func database(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Database {
        if PostgresURL.isPostgresURL(uri) { return .postgres(try PostgresURL(uri, environment: environment)) }
        guard uri.hasPrefix("sqlite:///") else {
            let scheme = uri.split(separator: ":", maxSplits: 1).first.map(String.init) ?? uri
            throw StoreError("""
                mlflow_database.url must be sqlite:////absolute/path.db or postgresql://…, got a '\(scheme)' URI \
                (Stitch writes MLflow databases on SQLite and PostgreSQL)
                """)
        }
        // sqlite:///relative.db and sqlite:////absolute.db; a query (`?timeout=…`) is SQLAlchemy's.
        var path = String(uri.dropFirst("sqlite:///".count))
        if let query = path.firstIndex(of: "?") { path = String(path[..<query]) }
        guard !path.isEmpty, path != ":memory:" else {
            throw StoreError("mlflow_database.url names no file (an in-memory SQLite database is not shared with MLflow)")
        }
        return .sqlite(path: path.removingPercentEncoding ?? path)
    }

    /// The experiment a trace is written into.
    package func experiment(forTraceExperiment traceExperiment: String?) -> String {
        if experimentFromTrace, let traceExperiment, !traceExperiment.isEmpty { return traceExperiment }
        return experimentID ?? MLflowExporterConfiguration.defaultExperimentID
    }

    /// Every problem, as `field: what is wrong` (empty when valid).
    package func problems() -> [String] {
        var problems: [String] = []
        do { _ = try database() } catch { problems.append("url: \(error)") }
        if let experimentID, Int64(experimentID) == nil {
            problems.append("experiment_id: must be an integer (MLflow's SQL store numbers its experiments), got '\(experimentID)'")
        }
        return problems
    }

    package var description: String {
        "MLflow database \(PostgresURL.redact(uri)) experiment=\(experimentID ?? MLflowExporterConfiguration.defaultExperimentID)"
            + (experimentFromTrace ? " (or the trace's)" : "")
    }
}

/// Writes finished traces straight into MLflow's database, as MLflow's own OTLP ingest would have
/// stored them (`MLflowRows`), so that MLflow's UI and clients read them as their own. It runs
/// behind the destination's disk queue like the other forwarding destinations: a database that
/// cannot be reached (or is locked) is retried with back-off while the queue holds the traces; a
/// trace whose experiment does not exist goes to the dead letters, the rest of its batch is written.
final class MLflowDatabaseExporter: TraceExporter {
    let name: String
    let configuration: MLflowDatabaseConfiguration
    private let database: Backend
    private let deadLetters: any DeadLetterSink
    private let logger: Logger
    private let refusedTraces: Counter
    private let spansWritten: Counter
    private let writeTimer: Metrics.Timer
    /// The experiment of a trace whose experiment id is not a number (`PreparedBatch` logs it).
    private let defaultExperimentID: Int64

    enum Backend: Sendable {
        case sqlite(MLflowSQLiteDatabase)
        case postgres(MLflowPostgresDatabase)

        var schema: MLflowSchema {
            switch self {
            case .sqlite(let database): database.schema
            case .postgres(let database): database.schema
            }
        }

        var location: String {
            switch self {
            case .sqlite(let database): database.path
            case .postgres(let database): database.url.description
            }
        }
    }

    /// Opens the database and checks its schema revision (a refusal names the revision and the
    /// MLflow versions Stitch supports).
    init(name: String, configuration: MLflowDatabaseConfiguration, deadLetters: any DeadLetterSink,
         logger: Logger, metrics: any MetricsFactory) async throws {
        self.name = name
        self.configuration = configuration
        self.deadLetters = deadLetters
        self.logger = logger
        defaultExperimentID = Int64(configuration.experimentID ?? MLflowExporterConfiguration.defaultExperimentID) ?? 0
        switch try configuration.database() {
        case .sqlite(let path):
            database = .sqlite(try MLflowSQLiteDatabase(path: path))
        case .postgres(let url):
            database = .postgres(try await MLflowPostgresDatabase(url: url, logger: logger))
        }
        let dimensions = [("destination", name)]
        refusedTraces = Counter(label: "stitch_mlflow_database_refused_traces_total", dimensions: dimensions, factory: metrics)
        spansWritten = Counter(label: "stitch_mlflow_database_spans_written_total", dimensions: dimensions, factory: metrics)
        writeTimer = Metrics.Timer(label: "stitch_mlflow_database_write_seconds", dimensions: dimensions, factory: metrics)
        logger.info("writing into MLflow's database", metadata: [
            "database": "\(database.location)", "revision": "\(database.schema.revision)",
            "mlflow": "\(database.schema.mlflowVersions.joined(separator: ", "))",
        ])
    }

    var schema: MLflowSchema { database.schema }
    /// Into SQLite, larger batches than the other destinations': each commit of MLflow's
    /// rollback-journal file syncs it, and index pages touched by several traces are written once
    /// per transaction (measured 18k → 23k spans/s end to end from 4 to 16 MiB). PostgreSQL
    /// measured the same at both sizes and keeps the standard ones.
    var batchLimits: DeliveryBatchLimits {
        switch database {
        case .sqlite: Self.sqliteBatchLimits
        case .postgres: .standard
        }
    }

    static let sqliteBatchLimits = DeliveryBatchLimits(maxTraces: 4096, maxBytes: 16 << 20)

    func deliver(_ traces: [FinishedTrace]) async -> DeliveryOutcome {
        guard !traces.isEmpty else { return .delivered }
        let started = ContinuousClock.now
        let configuration = configuration
        let batch = await PreparedBatch.inParallel(traces, kindInContent: database.schema.kindInContent) {
            configuration.experiment(forTraceExperiment: $0.experimentID)
        }
        for problem in batch.problems {
            logger.log(level: problem.spansLeftOut ? .error : .warning, "\(problem.message)",
                       metadata: problem.metadata.mapValues { .string($0) })
        }
        let result: MLflowWriteResult
        do {
            switch database {
            case .sqlite(let database): result = try await database.write(batch.traces, defaultExperimentID: defaultExperimentID)
            case .postgres(let database): result = try await database.write(batch.traces, defaultExperimentID: defaultExperimentID)
            }
        } catch {
            let (reason, retryable) = Self.classify(error, database)
            return retryable ? .retryable(reason: reason, after: nil)
                : .permanent(reason: "MLflow's database refused the batch: \(reason)", response: "")
        }
        spansWritten.increment(by: result.spansWritten)
        writeTimer.recordInterval(since: started)
        if !result.refused.isEmpty {
            let refusedIDs = Set(result.refused.map(\.requestID))
            let refusedTraces = traces.filter { refusedIDs.contains(MLflowSpan.requestID(for: $0.traceID)) }
            for refusal in result.refused {
                logger.warning("trace not written into MLflow's database; kept in the dead letters", metadata: [
                    "trace.id": "\(refusal.requestID)", "experiment": "\(refusal.experimentID)", "reason": "\(refusal.reason)",
                ])
            }
            let reason = Array(Set(result.refused.map(\.reason))).sorted().joined(separator: "; ")
            do {
                try await deadLetters.append(refusedTraces, reason: reason, response: "")
            } catch {
                // The batch is sent again: what was written is written again, unchanged.
                return .retryable(reason: "could not keep \(refusedTraces.count) refused traces in the dead letters: \(error)", after: nil)
            }
            self.refusedTraces.increment(by: refusedTraces.count)
        }
        logger.debug("wrote traces into MLflow's database", metadata: [
            "traces.inserted": "\(result.tracesInserted)", "traces.merged": "\(result.tracesMerged)", "spans": "\(result.spansWritten)",
        ])
        return .delivered
    }

    /// The error as a log line shows it, and whether the same write may succeed later.
    static func classify(_ error: any Error, _ database: Backend) -> (String, Bool) {
        switch database {
        case .sqlite(let sqlite):
            return ("\(sqlite.path): \(error)", MLflowSQLiteDatabase.isRetryable(error))
        case .postgres(let postgres):
            return ("\(postgres.url): \(MLflowPostgresDatabase.describe(error))", MLflowPostgresDatabase.isRetryable(error))
        }
    }

    func shutdown() async {
        switch database {
        case .sqlite(let database): try? database.close()
        case .postgres(let database): await database.close()
        }
    }
}

extension Metrics.Timer {
    /// Records the time since `start`.
    func recordInterval(since start: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
