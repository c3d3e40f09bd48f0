import Foundation
import GRDB
import Logging
import OTLPWire
import StitchTestSupport
import Testing
import TraceEdge
@testable import PostgresStore
@testable import SQLiteStore
@testable import TraceModel

/// The store on a real PostgreSQL server (started by the tests, see `PostgresTestServer`), held to
/// the SQLite store: the same traces give the same rows and the same answers.
@Suite struct PostgresTraceStoreTests {
    static func server() throws -> PostgresTestServer { try PostgresTestServer.shared() }

    /// A store on a new database of the shared server.
    static func makeStore(_ server: PostgresTestServer, database: String? = nil) async throws -> (PostgresTraceStore, String) {
        let name = try database ?? server.makeDatabase()
        let store = try await PostgresTraceStore(url: PostgresURL(server.url(database: name)))
        return (store, name)
    }

    // MARK: The same rows as SQLite

    /// Traces that take every path of a write: new traces, a trace finished from two services'
    /// requests, late fragments merged into stored traces, spans sent again, experiments that do
    /// not exist yet, session, user, tokens, cost and trace tags.
    static func workload() throws -> (finished: [[FinishedTrace]], prepared: [PreparedTrace]) {
        var batches: [[FinishedTrace]] = []
        let a = try Fixtures.batch(Fixtures.serviceA, experimentID: "1").spans
        let b = try Fixtures.batch(Fixtures.serviceB, experimentID: "1").spans
        batches.append([FinishedTrace(traceID: a[0].traceID, spans: a + b, reason: .closed, isComplete: true, experimentID: "7")])
        let client = try Fixtures.batch(Fixtures.mlflowClientRoot).spans
        let server = try Fixtures.batch(Fixtures.mlflowRemoteServer).spans
        batches.append([FinishedTrace(traceID: client[0].traceID, spans: client, reason: .timeout, isComplete: false, experimentID: "9")])
        batches.append([FinishedTrace(traceID: server[0].traceID, spans: server, reason: .late, isComplete: false, experimentID: nil)])

        let synthetic = SyntheticTraces(traceCount: 30, spansPerService: 3, services: ["gateway", "planner", "tool"], seed: 11)
        var byService: [[TraceID: [SpanRecord]]] = []
        for request in synthetic.requests(traces: 0..<30) {
            let decoded = try OTLPTraceDecoder.decode(request.body, experimentID: "12")
            byService.append(Dictionary(grouping: decoded.spans, by: \.traceID))
        }
        // Two services first (released by timeout), the third as a late fragment, then the first
        // service's spans once more (a client's retry): the store merges and deduplicates.
        var first: [FinishedTrace] = []
        var late: [FinishedTrace] = []
        var again: [FinishedTrace] = []
        for index in 0..<30 {
            let id = synthetic.traceID(index)
            first.append(FinishedTrace(traceID: id, spans: byService[0][id]! + byService[1][id]!, reason: .timeout,
                                       isComplete: false, experimentID: "12"))
            late.append(FinishedTrace(traceID: id, spans: byService[2][id]!, reason: .late, isComplete: false, experimentID: "12"))
            if index % 3 == 0 {
                again.append(FinishedTrace(traceID: id, spans: byService[0][id]!, reason: .late, isComplete: false, experimentID: "12"))
            }
        }
        batches += [first, late, again]
        // A trace and its own fragment in one batch (two rounds in one transaction).
        let lone = SyntheticTraces(traceCount: 1, spansPerService: 2, services: ["solo", "helper"], seed: 12)
        let requests = lone.requests(traces: 0..<1)
        let soloSpans = try OTLPTraceDecoder.decode(requests[0].body, experimentID: nil).spans
        let helperSpans = try OTLPTraceDecoder.decode(requests[1].body, experimentID: nil).spans
        batches.append([
            FinishedTrace(traceID: lone.traceID(0), spans: soloSpans, reason: .evicted, isComplete: false, experimentID: nil),
            FinishedTrace(traceID: lone.traceID(0), spans: helperSpans, reason: .late, isComplete: false, experimentID: nil),
        ])

        var prepared: [PreparedTrace] = []
        for index in 0..<12 {
            let id = TraceID(high: 0xfeed, low: UInt64(index))
            let start = UInt64(2_000 + index) * 1_000_000
            let root = Build.span(1, trace: id, name: "agent-\(index % 3)", start: start, end: start + 9_000_000,
                                  status: index % 4 == 0 ? 2 : 1, attributes: [
                                      ("session.id", .string("session-\(index % 3)")), ("user.id", .string("user-\(index % 2)")),
                                      ("mlflow.spanInputs", .string(#"{"question": "why?"}"#)),
                                      ("mlflow.spanOutputs", .string(#""because""#)),
                                      ("mlflow.traceTag.team", .string("search")),
                                      ("mlflow.spanType", .string("AGENT")),
                                  ])
            let llm = Build.span(2, parent: 1, trace: id, name: "llm", start: start + 1_000_000, end: start + 8_000_000, attributes: [
                ("mlflow.spanType", .string("LLM")),
                ("mlflow.chat.tokenUsage", .string(#"{"input_tokens": 10, "output_tokens": \#(index), "total_tokens": \#(10 + index)}"#)),
                ("mlflow.llm.cost", .string(#"{"input_cost": 0.25, "output_cost": 0.5, "total_cost": 0.75}"#)),
                ("mlflow.llm.model", .string("gpt-4o-mini")), ("mlflow.llm.provider", .string("openai")),
            ])
            let resource = Build.resource([("service.name", "agent"), ("deployment.environment", "test")])
            prepared.append(Build.trace([(root, resource), (llm, resource)], experimentID: index < 6 ? 3 : nil, trace: id))
        }
        return (batches, prepared)
    }

    /// The workload into both stores, batch by batch in the same order.
    static func writeWorkload(_ sqlite: SQLiteTraceStore, _ postgres: PostgresTraceStore) async throws {
        let (batches, prepared) = try workload()
        for batch in batches {
            try await sqlite.consume(batch)
            try await postgres.consume(batch)
        }
        _ = try await sqlite.write(prepared)
        _ = try await postgres.write(prepared, ensuringDefault: false)
    }

    @Test func theSameTracesGiveTheSameRowsInSQLiteAndPostgreSQL() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let sqlite = try SQLiteTraceStore(path: directory.storePath)
        let (postgres, database) = try await Self.makeStore(try Self.server())
        try await Self.writeWorkload(sqlite, postgres)

        let server = try Self.server()
        for table in RowDump.tables {
            let fromSQLite = try await sqlite.pool.read { db in try RowDump.sqlite(table, db) }
            let fromPostgres = try RowDump.postgres(table, server: server, database: database)
            #expect(!fromSQLite.isEmpty, "\(table.name) has rows")
            #expect(fromSQLite == fromPostgres, "\(table.name) differs")
            if fromSQLite != fromPostgres {
                for (left, right) in zip(fromSQLite, fromPostgres) where left != right {
                    Issue.record("first differing \(table.name) row:\n sqlite:   \(left)\n postgres: \(right)")
                    break
                }
            }
        }
        try await postgres.close()
    }

    @Test func searchesAndPagesAnswerAsSQLiteDoes() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let sqlite = try SQLiteTraceStore(path: directory.storePath)
        let (postgres, _) = try await Self.makeStore(try Self.server())
        try await Self.writeWorkload(sqlite, postgres)
        let filters = [
            "", "status = 'OK'", "status = 'ERROR'", "trace.status != 'OK'", "tag.`service.name` = 'gateway'",
            "tag.team = 'search'", "metadata.`mlflow.trace.user` = 'user-1'", "trace.session_id = 'session-2'",
            "span.type = 'LLM'", "span.name = 'tool-1'", "timestamp_ms > 1000", "execution_time_ms >= 5",
            "tag.`stitch.completeness` = 'closed'", "span.status = 'ERROR' AND tag.team = 'search'",
        ]
        for filter in filters {
            for experiments in [[], ["12"], ["3", "0"]] {
                var tokens: (String?, String?) = (nil, nil)
                var pages = 0
                repeat {
                    let query = { (token: String?) in TraceQuery(experimentIDs: experiments, filter: filter, maxResults: 7, pageToken: token) }
                    let left = try await sqlite.searchTraces(query(tokens.0))
                    let right = try await postgres.searchTraces(query(tokens.1))
                    #expect(left.traces.map(\.requestID) == right.traces.map(\.requestID), "\(filter) in \(experiments)")
                    #expect(left.mlflowJSON() == right.mlflowJSON(), "\(filter) in \(experiments), page \(pages)")
                    tokens = (left.nextPageToken, right.nextPageToken)
                    #expect(tokens.0 == tokens.1)
                    pages += 1
                } while tokens.0 != nil && pages < 20
            }
        }
        for id in try await sqlite.searchTraces(TraceQuery(maxResults: 1000)).traces.map(\.requestID) {
            let left = try #require(try await sqlite.storedTrace(id: id))
            let right = try #require(try await postgres.storedTrace(id: id))
            #expect(left.mlflowJSON() == right.mlflowJSON(), "trace \(id)")
            #expect(left.spans.map(\.serviceName) == right.spans.map(\.serviceName))
        }
        #expect(try await postgres.storedTrace(id: "tr-00000000000000000000000000000000") == nil)
        await #expect(throws: FilterError.self) { try await postgres.searchTraces(TraceQuery(filter: "status = 'OK' bogus")) }
        await #expect(throws: StoreError.self) { try await postgres.searchTraces(TraceQuery(experimentIDs: ["one"])) }
        try await postgres.close()
    }

    // MARK: Several writers

    @Test func twoInstancesWritingFragmentsOfTheSameTracesAtOnceLoseAndDoubleNothing() async throws {
        let server = try Self.server()
        let database = try server.makeDatabase()
        let (first, _) = try await Self.makeStore(server, database: database)
        let (second, _) = try await Self.makeStore(server, database: database)
        let synthetic = SyntheticTraces(traceCount: 240, spansPerService: 4, services: ["a", "b", "c"], seed: 21)
        var fragments: [[FinishedTrace]] = [[], []]
        for (service, request) in synthetic.requests(traces: 0..<240).enumerated() {
            for (id, spans) in Dictionary(grouping: try OTLPTraceDecoder.decode(request.body, experimentID: nil).spans, by: \.traceID) {
                let index = Int(id.low) - 1
                // Each trace's three fragments go to both instances; the first service's is the
                // release, the others are late.
                fragments[(index + service) % 2].append(FinishedTrace(
                    traceID: id, spans: spans, reason: service == 0 ? .timeout : .late, isComplete: false, experimentID: "5"))
            }
        }
        for index in fragments.indices { fragments[index].shuffle() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (store, list) in [(first, fragments[0]), (second, fragments[1])] {
                // Two batches in flight per instance, as the sink writer runs them.
                for lane in 0..<2 {
                    group.addTask {
                        for start in stride(from: lane * 16, to: list.count, by: 32) {
                            try await store.consume(Array(list[start..<min(start + 16, list.count)]))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let counts = try server.psql("SELECT (SELECT count(*) FROM trace_info) || ' ' || (SELECT count(*) FROM spans)", database: database)
        #expect(counts.trimmingCharacters(in: .whitespacesAndNewlines) == "240 2880")

        // The merged result equals one writer's, fragment by fragment in order.
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let reference = try SQLiteTraceStore(path: directory.storePath)
        for fragment in (fragments[0] + fragments[1]).sorted(by: { $0.reason == .timeout && $1.reason != .timeout }) {
            try await reference.consume([fragment])
        }
        for table in RowDump.tables where table.name != "experiments" {
            let expected = try await reference.pool.read { db in try RowDump.sqlite(table.ignoring("db_payload_generation"), db) }
            let actual = try RowDump.postgres(table.ignoring("db_payload_generation"), server: server, database: database)
            #expect(expected == actual, "\(table.name) differs from one writer's")
        }
        try await first.close()
        try await second.close()
    }

    // MARK: Connection loss

    @Test func aServerKilledAndRestartedMidRunLosesNothing() async throws {
        let server = try PostgresTestServer()
        defer { server.remove() }
        let database = try server.makeDatabase()
        let metrics = RecordingMetrics()
        let store = try await PostgresTraceStore(url: PostgresURL(server.url(database: database)), metrics: metrics)
        let synthetic = SyntheticTraces(traceCount: 400, spansPerService: 2, services: ["x", "y"], seed: 31)
        var traces: [FinishedTrace] = []
        let requests = synthetic.requests(traces: 0..<400)
        let spans = try requests.flatMap { try OTLPTraceDecoder.decode($0.body, experimentID: nil).spans }
        for (id, group) in Dictionary(grouping: spans, by: \.traceID) {
            traces.append(FinishedTrace(traceID: id, spans: group, reason: .closed, isComplete: true, experimentID: nil))
        }
        // Batch after batch; the longest wait for one batch shows the outage fell within the run.
        let writes = Task {
            var longest: Duration = .zero
            for start in stride(from: 0, to: traces.count, by: 10) {
                let started = ContinuousClock.now
                try await store.consume(Array(traces[start..<min(start + 10, traces.count)]))
                longest = max(longest, ContinuousClock.now - started)
                try await Task.sleep(for: .milliseconds(20))
            }
            return longest
        }
        try await Task.sleep(for: .milliseconds(200))
        try server.kill()
        try await Task.sleep(for: .milliseconds(1500))
        try server.start()
        let longest = try await writes.value
        #expect(longest > .milliseconds(1000), "a batch waited through the outage (longest \(longest))")
        let counts = try server.psql("SELECT (SELECT count(*) FROM trace_info) || ' ' || (SELECT count(*) FROM spans)", database: database)
        #expect(counts.trimmingCharacters(in: .whitespacesAndNewlines) == "400 1600")
        #expect(metrics.total("stitch_store_traces_written_total") == 400)
        try await store.close()
    }

    // MARK: Logging in

    @Test func thePasswordComesFromTheURLAFileOrPGPASSWORDAndIsNeverShown() async throws {
        let server = try Self.server()
        let database = try server.makeDatabase()
        let bare = server.url(database: database, withPassword: false)

        let fromEnvironment = try PostgresURL(bare, environment: ["PGPASSWORD": server.password])
        #expect(fromEnvironment.passwordSource == "PGPASSWORD")
        try await PostgresTraceStore(url: fromEnvironment).close()

        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.url.appendingPathComponent("password").path
        try (server.password + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let fromFile = try PostgresURL(bare + "&password_file=\(file)", environment: ["PGPASSWORD": "not-this-one"])
        #expect(fromFile.passwordSource == "password_file")
        try await PostgresTraceStore(url: fromFile).close()

        let fromURL = try PostgresURL(server.url(database: database), environment: ["PGPASSWORD": "not-this-one"])
        #expect(fromURL.passwordSource == "url")
        #expect(!fromURL.description.contains(server.password))
        #expect(fromURL.description == "postgresql://postgres@127.0.0.1:\(server.port)/\(database)")

        let wrong = "wrong-secret-\(UInt32.random(in: 0...UInt32.max))"
        let error = await #expect(throws: StoreError.self) {
            try await PostgresTraceStore(url: PostgresURL(bare, environment: ["PGPASSWORD": wrong]))
        }
        let message = error?.message ?? ""
        #expect(message.contains("28P01"), "the server's reason: \(message)")
        #expect(!message.contains(wrong))
    }

    @Test func aDatabaseWithoutTheStoreSaysThereIsNoDataYet() async throws {
        let server = try Self.server()
        let database = try server.makeDatabase()
        let error = await #expect(throws: StoreError.self) {
            try await PostgresTraceStore(url: PostgresURL(server.url(database: database)), readOnly: true)
        }
        #expect(error?.message.contains("no data yet") == true)
        // Opening for writing creates it; then it reads.
        try await PostgresTraceStore(url: PostgresURL(server.url(database: database))).close()
        let reader = try await PostgresTraceStore(url: PostgresURL(server.url(database: database)), readOnly: true)
        #expect(try await reader.searchTraces(TraceQuery()).traces.isEmpty)
        await #expect(throws: StoreError.self) { try await reader.consume(try Self.workload().finished[0]) }
        try await reader.close()
    }

    @Test func anUnreachableServerIsNamedWithoutItsPassword() async throws {
        let port = try RawHTTPClient.listenAndClose()
        let error = await #expect(throws: StoreError.self) {
            try await PostgresTraceStore(url: PostgresURL("postgresql://u:hunter2@127.0.0.1:\(port)/db?sslmode=disable&connect_timeout=2"))
        }
        let message = error?.message ?? ""
        #expect(message.contains("127.0.0.1:\(port)"), "\(message)")
        #expect(!message.contains("hunter2"))
    }

    @Test func textsPostgreSQLCannotHoldAreMadeStorable() async throws {
        let (store, database) = try await Self.makeStore(try Self.server())
        let id = TraceID(high: 0xbad, low: 1)
        let root = Build.span(1, trace: id, name: "nul\u{0}inside", start: 1_000_000, end: 2_000_000, attributes: [
            ("mlflow.spanType", .string(String(repeating: "T", count: 600))),
        ])
        let resource = Build.resource([("service.name", "svc"), ("long", String(repeating: "v", count: 9000))])
        _ = try await store.write([Build.trace([(root, resource)], trace: id)], ensuringDefault: false)
        let stored = try #require(try await store.storedTrace(id: MLflowSpan.requestID(for: id)))
        #expect(stored.spans[0].name == "nul\u{FFFD}inside")
        #expect(stored.spans[0].type?.count == 500)
        #expect(stored.info.tags["long"]?.count == 8000)
        _ = database
        try await store.close()
    }

    // MARK: URLs

    @Test func urlsParseWithLibpqDefaults() throws {
        let url = try PostgresURL("postgresql://db.internal/traces", environment: [:])
        #expect(url.host == "db.internal" && url.port == 5432 && url.user == "postgres" && url.database == "traces")
        #expect(url.sslMode == .prefer && url.password == nil)
        let fromEnvironment = try PostgresURL("postgres://", environment: ["PGHOST": "h", "PGPORT": "6543", "PGUSER": "me"])
        #expect(fromEnvironment.host == "h" && fromEnvironment.port == 6543 && fromEnvironment.database == "me")
        let sqlalchemy = try PostgresURL("postgresql+psycopg2://u:p%40ss@h:5433/mlflow?sslmode=require", environment: [:])
        #expect(sqlalchemy.password == "p@ss" && sqlalchemy.sslMode == .require && sqlalchemy.port == 5433)
        #expect(throws: StoreError.self) { try PostgresURL("postgresql://h/db?sslmod=disable", environment: [:]) }
        #expect(throws: StoreError.self) { try PostgresURL("postgresql://h/db?sslmode=sometimes", environment: [:]) }
        #expect(throws: StoreError.self) { try PostgresURL("/var/lib/stitch.db", environment: [:]) }
        #expect(PostgresURL.redact("postgresql://u:secret@h:1/d?x=1") == "postgresql://u:***@h:1/d?x=1")
        #expect(PostgresURL.redact("postgresql://h/d") == "postgresql://h/d")
        #expect(PostgresTraceStore.numberedPlaceholders("a = ? AND (b, c) < (?, ?)") == "a = $1 AND (b, c) < ($2, $3)")
    }
}

/// Every row of a table as text, ordered by its key, read the same way from either database:
/// floats as integers of millionths, resources by their attributes (ids differ between databases).
struct RowDump {
    var name: String
    var columns: [String]
    var floats: Set<String> = []
    var order: String

    static let tables: [RowDump] = [
        RowDump(name: "experiments", columns: ["experiment_id", "name", "workspace", "artifact_location", "lifecycle_stage"],
                order: "experiment_id"),
        RowDump(name: "trace_info", columns: [
            "request_id", "experiment_id", "timestamp_ms", "execution_time_ms", "status", "client_request_id", "request_preview",
            "response_preview", "db_payload_generation", "trace_name", "session_id", "input_tokens", "output_tokens",
            "total_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation_input_tokens_above_1hr",
            "input_cost", "output_cost", "total_cost",
        ], floats: ["input_cost", "output_cost", "total_cost"], order: "request_id"),
        RowDump(name: "trace_tags", columns: ["request_id", "key", "value"], order: "request_id, key"),
        RowDump(name: "trace_request_metadata", columns: ["request_id", "key", "value"], order: "request_id, key"),
        RowDump(name: "spans", columns: [
            "trace_id", "experiment_id", "span_id", "parent_span_id", "name", "type", "status", "start_time_unix_nano",
            "end_time_unix_nano", "duration_ns", "content", "input_cost", "output_cost", "total_cost", "model_name",
            "model_provider", "(SELECT r.attributes FROM stitch_resources r WHERE r.resource_id = t.stitch_resource_id)",
        ], floats: ["input_cost", "output_cost", "total_cost"], order: "trace_id, span_id"),
    ]

    func ignoring(_ column: String) -> RowDump {
        var copy = self
        copy.columns.removeAll { $0 == column }
        return copy
    }

    private func expressions(text: (String) -> String) -> String {
        columns.map { column in
            floats.contains(column) ? text("CAST(ROUND(t.\(column) * 1000000) AS BIGINT)") : text(column.hasPrefix("(") ? column : "t.\(column)")
        }.joined(separator: ", ")
    }

    static func sqlite(_ table: RowDump, _ db: Database) throws -> [[String?]] {
        let sql = "SELECT \(table.expressions { $0 }) FROM \(table.name) t ORDER BY \(table.order)"
        return try Row.fetchAll(db, sql: sql).map { row in
            (0..<row.count).map { index in
                switch row[index] as DatabaseValue {
                case let value where value.isNull: return nil
                case let value: return String.fromDatabaseValue(value) ?? Int64.fromDatabaseValue(value).map(String.init) ?? "\(value)"
                }
            }
        }
    }

    /// Through psql, one JSON array of texts per row (psql's own output cannot hold every text).
    static func postgres(_ table: RowDump, server: PostgresTestServer, database: String) throws -> [[String?]] {
        let sql = """
            SELECT json_build_array(\(table.expressions { "(\($0))::text" }))::text FROM \(table.name) t
            ORDER BY \(table.order)
            """
        let output = try server.psql(sql, database: database)
        return try output.split(separator: "\n").map { line in
            let values = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [Any]
            return values.map { $0 is NSNull ? nil : ($0 as! String) }
        }
    }
}
