import Foundation
import Logging
import Metrics
import NIOCore
import NIOSSL
import PostgresNIO
import Synchronization
import TraceEdge
import TraceModel

/// The store on PostgreSQL: the SQLite store's tables and rows, written by several Stitch
/// instances at once if need be.
///
/// Writes: one transaction per `consume` call on a pooled connection, every table written by one
/// prepared statement with the batch's values as arrays. A write that fails because the
/// connection was lost, the server restarts or two writers deadlock is retried with back-off
/// until it commits (the traces wait meanwhile in the caller's bounded hand-off); a write the
/// server refuses for its data is thrown to the caller.
package final class PostgresTraceStore: TraceStore {
    package let url: PostgresURL
    package var location: String { url.description }
    let defaultExperimentID: Int64
    let readOnly: Bool
    /// How each connection is opened (TLS contexts made once).
    private let configuration: PostgresConnection.Configuration
    private let slots: ConnectionSlots
    private let logger: Logger
    /// Experiments and resources known to be committed (Stitch never deletes either).
    private let known = Mutex<(experiments: Set<Int64>, resources: [String: Int64])>(([], [:]))
    private let instruments: StoreInstruments
    private let writeRetries: Counter
    private let unreachable = Atomic<Bool>(false)
    /// Whether `stitch_trace_links` exists: a writer's open migrates to it; a read-only open of a
    /// store made before links were kept finds it missing (seen once, at open).
    private let hasLinksTable = Atomic<Bool>(true)
    package var isUnreachable: Bool { unreachable.load(ordering: .relaxed) }

    /// Connections at most: two writes in flight (one prepared while the other is written) and
    /// the query API beside them.
    static let maximumConnections = 4
    /// Back-off between attempts of a write that failed for a retryable reason.
    static let firstRetryDelay: Duration = .milliseconds(100)
    static let maximumRetryDelay: Duration = .seconds(5)

    /// Connects and, unless `readOnly`, creates the schema and experiment `0` "Default" when
    /// missing. Fails with the server's reason when the database cannot be reached within the
    /// URL's `connect_timeout`.
    package init(url: PostgresURL, defaultExperimentID: String = "0", readOnly: Bool = false,
                 logger: Logger = Logger(label: "stitch.store"), metrics: any MetricsFactory = MetricsSystem.factory) async throws {
        guard let defaultExperiment = Int64(defaultExperimentID) else {
            throw StoreError("default experiment id must be an integer (MLflow experiment ids are), got '\(defaultExperimentID)'")
        }
        self.url = url
        self.defaultExperimentID = defaultExperiment
        self.readOnly = readOnly
        self.logger = logger
        instruments = StoreInstruments(metrics: metrics)
        writeRetries = Counter(label: "stitch_store_write_retries_total", factory: metrics)
        let configuration = try Self.connectionConfiguration(url)
        self.configuration = configuration
        slots = ConnectionSlots(limit: Self.maximumConnections) {
            try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        }
        do {
            do {
                try await Self.probe(configuration, logger: logger)
            } catch {
                throw StoreError("cannot open the store at \(url): \(PostgresErrors.describe(error))")
            }
            if readOnly {
                try await requireSchema()
            } else {
                try await createSchema()
            }
        } catch {
            await slots.close()
            throw error
        }
    }

    /// How to connect: the URL's server, login and `sslmode` (`prefer` and `verify-full` verify the
    /// certificate, `require` does not, as libpq).
    static func connectionConfiguration(_ url: PostgresURL) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch url.sslMode {
        case .disable:
            tls = .disable
        case .prefer:
            tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require:
            var unverified = TLSConfiguration.makeClientConfiguration()
            unverified.certificateVerification = .none
            tls = .require(try NIOSSLContext(configuration: unverified))
        case .verifyFull:
            tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
        configuration.options.connectTimeout = .seconds(Int64(url.connectTimeoutSeconds))
        return configuration
    }

    /// Opens one connection and runs `SELECT 1`: fails with the server's reason.
    static func probe(_ configuration: PostgresConnection.Configuration, logger: Logger) async throws {
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        defer { connection.close().whenComplete { _ in withExtendedLifetime(connection) {} } }
        try await connection.query("SELECT 1", logger: logger)
    }

    private func createSchema() async throws {
        do {
            try await slots.withTransaction(logger: logger) { [logger] connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey))", logger: logger)
                try await connection.query("CREATE TABLE IF NOT EXISTS stitch_migrations (identifier TEXT NOT NULL PRIMARY KEY)", logger: logger)
                for migration in PostgresSchema.migrations {
                    let applied = try await connection.query(
                        "SELECT 1 FROM stitch_migrations WHERE identifier = \(migration.identifier)", logger: logger).collect()
                    guard applied.isEmpty else { continue }
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query("INSERT INTO stitch_migrations (identifier) VALUES (\(migration.identifier))", logger: logger)
                }
                let now = Self.nowMs()
                try await connection.query("""
                    INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
                    VALUES (0, 'Default', NULL, 'active', \(now), \(now)) ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
        } catch {
            throw StoreError("cannot create the store's tables in \(url): \(PostgresErrors.describe(error))")
        }
        // The default experiment, created like any other the first time a trace names it.
        _ = try await write([], ensuringDefault: true)
    }

    private func requireSchema() async throws {
        var present: Set<String> = []
        do {
            for row in try await readRows("""
                SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()
                """) {
                present.insert(try row.decode(String.self))
            }
        } catch {
            throw StoreError("cannot read the store at \(url): \(PostgresErrors.describe(error))")
        }
        let missing = StoreTables.required.filter { !present.contains($0) }
        if missing.count == StoreTables.required.count {
            throw StoreError("no data yet: there is no Stitch store in \(url) (a server creates it when it starts with this store URL)")
        }
        guard missing.isEmpty else {
            throw StoreError("\(url) is not a Stitch store (missing tables: \(missing.joined(separator: ", ")))")
        }
        hasLinksTable.store(present.contains("stitch_trace_links"), ordering: .relaxed)
    }

    static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    package func consume(_ traces: [FinishedTrace]) async throws {
        try await instruments.consume(traces, logger: logger, location: url.description, describe: PostgresErrors.describe) { prepared in
            let summary = try await write(prepared, ensuringDefault: false)
            return .init(tracesInserted: summary.tracesInserted, tracesMerged: summary.tracesMerged, spans: summary.spansWritten,
                         tracesSplit: summary.tracesSplit)
        }
    }

    /// Writes in one transaction, retrying with back-off while the failure is the connection's
    /// or a conflict with another writer. `ensuringDefault` makes sure the default experiment
    /// exists even for an empty batch.
    func write(_ traces: [PreparedTrace], ensuringDefault: Bool) async throws -> PostgresWriteSummary {
        guard !readOnly else { throw StoreError("the store at \(url) is open read-only") }
        var delay = Self.firstRetryDelay
        var attempt = 0
        while true {
            attempt += 1
            // A write still waiting after `connect_timeout` (for a free connection, or for a server
            // that accepts but does not answer) is reported, with what a fresh connection meets.
            let stall = Task { [url, configuration, logger] in
                try await Task.sleep(for: .seconds(Int64(url.connectTimeoutSeconds)))
                var reason = "the server is reachable; the write waits for a free connection"
                do { try await Self.probe(configuration, logger: logger) } catch { reason = PostgresErrors.describe(error) }
                logger.warning("store write is waiting for PostgreSQL", metadata: [
                    "reason": "\(reason)", "traces": "\(traces.count)", "store": "\(url)",
                ])
            }
            defer { stall.cancel() }
            do {
                let (experiments, resources) = known.withLock { ($0.experiments, $0.resources) }
                let summary = try await slots.withTransaction(logger: logger) { connection in
                    let writer = PostgresWriter(connection: connection, logger: self.logger,
                                                defaultExperimentID: self.defaultExperimentID, nowMs: Self.nowMs(),
                                                knownExperiments: experiments, knownResources: resources)
                    return try await writer.write(traces, ensuringDefault: ensuringDefault)
                }
                unreachable.store(false, ordering: .relaxed)
                known.withLock { state in
                    state.experiments.formUnion(summary.experiments)
                    state.resources.merge(summary.resources) { _, new in new }
                }
                if attempt > 1 {
                    logger.info("store write succeeded after retries", metadata: ["attempts": "\(attempt)", "store": "\(url)"])
                }
                return summary
            } catch {
                guard PostgresErrors.isRetryable(error) else { throw error }
                if PostgresErrors.isConnectionLoss(error) { unreachable.store(true, ordering: .relaxed) }
                writeRetries.increment()
                if attempt == 1 || attempt.isMultiple(of: 20) {
                    logger.warning("store write failed; retrying", metadata: [
                        "error": "\(PostgresErrors.describe(error))", "attempt": "\(attempt)",
                        "retry.in": "\(delay)", "traces": "\(traces.count)", "store": "\(url)",
                    ])
                }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, Self.maximumRetryDelay)
            }
        }
    }

    package func close() async throws {
        // Writes are awaited by their callers (the sink writer has drained before the store closes).
        await slots.close()
    }

    package func releaseMemory() async {}

    /// Deletes every trace (benchmarks start from an empty store).
    package func removeEveryTrace() async throws {
        _ = try await slots.withTransaction(logger: logger) { connection in
            try await connection.query("TRUNCATE trace_tags, trace_request_metadata, spans, trace_info", logger: self.logger)
        }
    }

    // MARK: Reading

    package func searchTraces(_ query: TraceQuery) async throws -> TraceSearchPage {
        let statement = try TraceSearchStatement(query)
        var binds = PostgresBindings(capacity: statement.arguments.count)
        for argument in statement.arguments {
            switch argument {
            case .string(let value): binds.append(value)
            case .integer(let value): binds.append(value)
            }
        }
        let sql = Self.numberedPlaceholders(statement.sql)
        var rows = try await readRows(PostgresQuery(unsafeSQL: sql, binds: binds))
        let hasMore = rows.count > statement.limit
        if hasMore { rows.removeLast(rows.count - statement.limit) }
        return statement.page(try await records(rows), hasMore: hasMore)
    }

    package func storedTrace(id: String) async throws -> StoredTrace? {
        let rows = try await readRows("SELECT \(unescaped: TraceInfoColumns.select) FROM trace_info ti WHERE ti.request_id = \(id)")
        guard let info = try await records(rows).first else { return nil }
        let spanRows = try await readRows("""
            SELECT s.span_id, s.parent_span_id, s.name, s.type, s.status, s.start_time_unix_nano,
                s.end_time_unix_nano, r.service_name, s.content
            FROM spans s LEFT JOIN stitch_resources r ON r.resource_id = s.stitch_resource_id
            WHERE s.trace_id = \(id)
            ORDER BY s.start_time_unix_nano, s.span_id
            """)
        let spans = try spanRows.map { row in
            let (spanID, parent, name, type, status, start, end, service, content) =
                try row.decode((String, String?, String?, String?, String, Int64, Int64?, String?, String).self)
            return StoredSpan(spanID: spanID, parentSpanID: parent, name: name ?? "", type: type, status: status,
                              startTimeUnixNano: start, endTimeUnixNano: end ?? 0, serviceName: service, content: content)
        }
        guard hasLinksTable.load(ordering: .relaxed) else { return StoredTrace(info: info, spans: spans) }
        let links = try await readRows(PostgresQuery(unsafeSQL: TraceLink.selectBothWays(placeholder: "$1", "$1"), binds: {
            var binds = PostgresBindings()
            binds.append(id)
            return binds
        }())).map { row in
            let (requestID, spanID, linkedID, endpoint) = try row.decode((String, String, String, String?).self)
            return TraceLink(requestID: requestID, spanID: spanID, linkedRequestID: linkedID, endpointName: endpoint)
        }
        return StoredTrace(info: info, spans: spans, links: links)
    }

    private func readRows(_ query: PostgresQuery) async throws -> [PostgresRow] {
        do {
            return try await slots.withConnection { [logger] connection in try await connection.query(query, logger: logger).collect() }
        } catch {
            throw StoreError("reading the store at \(url) failed: \(PostgresErrors.describe(error))")
        }
    }

    private func records(_ rows: [PostgresRow]) async throws -> [TraceInfoRecord] {
        guard !rows.isEmpty else { return [] }
        var columns: [TraceInfoColumns] = []
        var ids = ColumnArray(.text, capacity: rows.count)
        for row in rows {
            let cells = row.makeRandomAccess()
            var usage: [String: Int64] = [:]
            for key in TokenUsage.allKeys { if let count = try cells[key].decode(Int64?.self) { usage[key] = count } }
            var cost: [String: Double] = [:]
            for key in TraceCost.keys { if let amount = try cells[key].decode(Double?.self) { cost[key] = amount } }
            let column = TraceInfoColumns(
                requestID: try cells["request_id"].decode(String.self), experimentID: try cells["experiment_id"].decode(Int64.self),
                timestampMs: try cells["timestamp_ms"].decode(Int64.self),
                executionTimeMs: try cells["execution_time_ms"].decode(Int64?.self), status: try cells["status"].decode(String.self),
                requestPreview: try cells["request_preview"].decode(String?.self),
                responsePreview: try cells["response_preview"].decode(String?.self),
                traceName: try cells["trace_name"].decode(String?.self), sessionID: try cells["session_id"].decode(String?.self),
                tokenUsage: usage, cost: cost)
            columns.append(column)
            ids.append(column.requestID)
        }
        var tags: [String: [String: String]] = [:]
        var metadata: [String: [String: String]] = [:]
        for (table, into) in [("trace_tags", 0), ("trace_request_metadata", 1)] {
            var binds = PostgresBindings()
            binds.append(ids)
            for row in try await readRows(PostgresQuery(
                unsafeSQL: "SELECT request_id, key, value FROM \(table) WHERE request_id = ANY($1::text[])", binds: binds)) {
                let (id, key, value) = try row.decode((String, String, String?).self)
                if into == 0 { tags[id, default: [:]][key] = value ?? "" } else { metadata[id, default: [:]][key] = value ?? "" }
            }
        }
        return columns.map { $0.record(tags: tags[$0.requestID] ?? [:], metadata: metadata[$0.requestID] ?? [:]) }
    }

    /// SQLite's `?` placeholders as PostgreSQL's `$1`, `$2`, … (the search SQL holds no literal `?`:
    /// every value is bound).
    static func numberedPlaceholders(_ sql: String) -> String {
        var result = ""
        result.reserveCapacity(sql.utf8.count + 16)
        var number = 0
        for character in sql {
            if character == "?" {
                number += 1
                result += "$\(number)"
            } else {
                result.append(character)
            }
        }
        return result
    }
}
