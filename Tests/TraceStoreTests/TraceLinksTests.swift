import Foundation
import GRDB
import OTLPWire
import StitchTestSupport
import Testing
import TraceEdge
@testable import PostgresStore
@testable import SQLiteStore
@testable import TraceModel

/// An agent's trace and the MLflow AI Gateway trace it called (mlflow.md, "MLflow's AI Gateway and
/// distributed tracing"): the link is kept both ways whichever trace is stored first, on both
/// backends, and the search filters find each side.
@Suite struct TraceLinksTests {
    static let agentTrace = TraceID(high: 0x6374_e175_22ee_d09d, low: 0x146c_0f66_1fd5_d827)
    static let gatewayTrace = TraceID(high: 0x8453_d5e6_aa10_c710, low: 0x0b7a_7012_fb30_c5df)
    static var agentID: String { MLflowSpan.requestID(for: agentTrace) }
    static var gatewayID: String { MLflowSpan.requestID(for: gatewayTrace) }
    static let gatewaySpan = SpanID(raw: 0x2a7e_ad3f_871d_725a)

    /// The spans as MLflow 3.17.2's gateway and a traced agent export them (attribute values
    /// JSON-encoded): the agent's root; the mirror `gateway/chat` span (created after its child,
    /// so it starts later) and its provider child in the agent's trace; the gateway's own trace.
    static func requests() throws -> (agent: FinishedTrace, gateway: FinishedTrace) {
        func span(_ trace: TraceID, _ id: UInt64, parent: UInt64, _ name: String, start: UInt64,
                  _ attributes: [(String, String)]) -> SpanDetail {
            SpanDetail(traceID: trace, spanID: SpanID(raw: id), parentSpanID: SpanID(raw: parent), name: name, kind: 1,
                       startTimeUnixNano: start, endTimeUnixNano: start + 1_000_000,
                       attributes: attributes.map { KeyValue(key: $0.0, value: .string($0.1)) }, statusCode: 1)
        }
        let usage = #"{"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}"#
        let agent = [
            span(agentTrace, 1, parent: 0, "agent-root", start: 1_000, [("mlflow.spanType", #""UNKNOWN""#), ("mlflow.spanInputs", #"{"q": "hi"}"#)]),
            span(agentTrace, gatewaySpan.raw, parent: 1, "gateway/chat", start: 9_000, [
                ("mlflow.spanType", #""LLM""#), ("endpoint_id", #""e-9d12""#), ("endpoint_name", #""chat""#),
                ("mlflow.gateway.linkedTraceId", "\"\(gatewayID)\""),
            ]),
            span(agentTrace, 3, parent: gatewaySpan.raw, "provider/openai/gpt-4o-mini", start: 5_000,
                 [("mlflow.spanType", #""LLM""#), ("mlflow.chat.tokenUsage", usage), ("mlflow.llm.model", #""gpt-4o-mini""#)]),
        ]
        let gateway = [
            span(gatewayTrace, 11, parent: 0, "gateway/chat", start: 4_000,
                 [("mlflow.experimentId", #""1""#), ("endpoint_name", #""chat""#), ("mlflow.spanInputs", #"{"messages": []}"#)]),
            span(gatewayTrace, 12, parent: 11, "provider/openai/gpt-4o-mini", start: 5_000,
                 [("mlflow.spanType", #""LLM""#), ("mlflow.chat.tokenUsage", usage)]),
        ]
        func finished(_ spans: [SpanDetail], service: String, experimentID: String?) throws -> FinishedTrace {
            let body = OTLPTraceEncoder.encodeRequest(resourceSpans: [ResourceSpansDetail(
                resource: ResourceDetail(attributes: [KeyValue(key: "service.name", value: .string(service))]),
                scopeSpans: [ScopeSpansDetail(scope: ScopeDetail(name: "mlflow", version: "3.17.2"), spans: spans)])])
            let records = try OTLPTraceDecoder.decode(body, experimentID: nil).spans
            return FinishedTrace(traceID: records[0].traceID, spans: records, reason: .closed, isComplete: true, experimentID: experimentID)
        }
        return (try finished(agent, service: "agent", experimentID: nil), try finished(gateway, service: "mlflow-gateway", experimentID: "1"))
    }

    static let link = TraceLink(requestID: agentID, spanID: gatewaySpan.hex, linkedRequestID: gatewayID, endpointName: "chat")

    /// Stores the two traces in the given order (separate writes, the second perhaps much later),
    /// the agent's spans once more (a client's retry), and checks what each side says.
    static func checkBothWays(_ store: any TraceStore, agentFirst: Bool) async throws {
        let (agent, gateway) = try requests()
        for trace in agentFirst ? [agent, gateway] : [gateway, agent] { try await store.consume([trace]) }
        var resent = agent
        resent.reason = .late
        try await store.consume([resent])

        let storedAgent = try #require(try await store.storedTrace(id: agentID))
        #expect(storedAgent.calls == [link])
        #expect(storedAgent.calledBy.isEmpty)
        // MLflow's rule: the sum of the spans' token usage, the provider call once.
        #expect(storedAgent.info.metadata["mlflow.trace.tokenUsage"] == #"{"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}"#)
        #expect(storedAgent.info.tags["stitch.completeness"] == "closed")
        let gatewaySpanRow = try #require(storedAgent.spans.first { $0.spanID == gatewaySpan.hex })
        #expect(gatewaySpanRow.content.contains(#""mlflow.gateway.linkedTraceId": "\"\#(gatewayID)\"""#))

        let storedGateway = try #require(try await store.storedTrace(id: gatewayID))
        #expect(storedGateway.calledBy == [link])
        #expect(storedGateway.calls.isEmpty)
        #expect(storedGateway.info.experimentID == "1")

        func search(_ filter: String) async throws -> [String] {
            try await store.searchTraces(TraceQuery(filter: filter)).traces.map(\.requestID)
        }
        #expect(try await search("gateway.trace_id = '\(gatewayID)'") == [agentID])
        #expect(try await search("gateway.endpoint = 'chat'") == [agentID])
        #expect(try await search("gateway.endpoint = 'embeddings'") == [])
        #expect(try await search("gateway.caller_trace_id = '\(agentID)'") == [gatewayID])
        #expect(try await search("gateway.endpoint = 'chat' AND status = 'OK'") == [agentID])
    }

    @Test(arguments: [true, false]) func theLinkIsKeptBothWaysOnSQLite(agentFirst: Bool) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        try await Self.checkBothWays(store, agentFirst: agentFirst)
        let rows = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM stitch_trace_links") }
        #expect(rows == 1, "the resent span replaced its link")
    }

    @Test(arguments: [true, false]) func theLinkIsKeptBothWaysOnPostgreSQL(agentFirst: Bool) async throws {
        let server = try PostgresTestServer.shared()
        let (store, _) = try await PostgresTraceStoreTests.makeStore(server)
        try await Self.checkBothWays(store, agentFirst: agentFirst)
        try await store.close()
    }

    @Test func aGatewayFilterTakesEqualsOnly() {
        #expect(throws: FilterError.self) { try TraceFilter.parse("gateway.endpoint != 'chat'") }
        #expect(throws: FilterError.self) { try TraceFilter.parse("gateway.model = 'x'") }
        let parsed = try? TraceFilter.parse("gateway.trace_id = 'tr-1'")
        #expect(parsed?.arguments == [.string("tr-1")])
    }

    @Test func aSpanWithoutAUsableLinkedIDLinksNothing() {
        #expect(GatewayLink(linkedTraceID: nil, endpointName: "\"chat\"") == nil)
        #expect(GatewayLink(linkedTraceID: "\"\"", endpointName: nil) == nil)
        #expect(GatewayLink(linkedTraceID: "\"" + String(repeating: "a", count: 51) + "\"", endpointName: nil) == nil)
        let bare = GatewayLink(linkedTraceID: "tr-abc", endpointName: nil)
        #expect(bare?.linkedRequestID == "tr-abc")
        #expect(bare?.endpointName == nil)
    }

    /// The same on PostgreSQL: a database with only `stitch-v1` applied gets the links table when a
    /// writer opens it, and a reader before that answers without links.
    @Test func aPostgreSQLStoreFromBeforeLinksIsReadAndThenMigrated() async throws {
        let server = try PostgresTestServer.shared()
        let database = try server.makeDatabase()
        let v1 = StoreTables.ddl(.postgres).map { $0 + ";" }.joined(separator: "\n")
        _ = try server.psql("""
            \(v1)
            CREATE TABLE stitch_migrations (identifier TEXT NOT NULL PRIMARY KEY);
            INSERT INTO stitch_migrations VALUES ('stitch-v1');
            INSERT INTO experiments (experiment_id, name) VALUES (0, 'Default');
            INSERT INTO trace_info (request_id, experiment_id, timestamp_ms, status) VALUES ('\(Self.gatewayID)', 0, 1, 'OK');
            """, database: database)
        let reader = try await PostgresTraceStore(url: PostgresURL(server.url(database: database)), readOnly: true)
        let before = try #require(try await reader.storedTrace(id: Self.gatewayID))
        #expect(before.links.isEmpty)
        try await reader.close()

        let (store, _) = try await PostgresTraceStoreTests.makeStore(server, database: database)
        try await store.consume([try Self.requests().agent])
        let after = try #require(try await store.storedTrace(id: Self.gatewayID))
        #expect(after.calledBy == [Self.link])
        #expect(try server.psql("SELECT identifier FROM stitch_migrations ORDER BY 1", database: database)
            .split(separator: "\n") == ["stitch-v1", "stitch-v2-trace-links"])
        try await store.close()
    }

    /// A store written by a Stitch from before links: opened read-only it answers without links;
    /// opened by a writer it gains the table (migration `stitch-v2-trace-links`) and keeps links.
    @Test func aStoreFromBeforeLinksIsReadAndThenMigrated() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: (directory.storePath as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        do {
            let queue = try DatabaseQueue(path: directory.storePath)
            var old = DatabaseMigrator()
            old.registerMigration("stitch-v1") { db in for statement in StoreTables.ddl(.sqlite) { try db.execute(sql: statement) } }
            try old.migrate(queue)
            try await queue.write { db in
                try db.execute(sql: "INSERT INTO experiments (experiment_id, name) VALUES (0, 'Default')")
                try db.execute(sql: """
                    INSERT INTO trace_info (request_id, experiment_id, timestamp_ms, status) VALUES ('\(Self.gatewayID)', 0, 1, 'OK')
                    """)
            }
            try queue.close()
        }
        let reader = try SQLiteTraceStore(path: directory.storePath, readOnly: true)
        let before = try #require(try await reader.storedTrace(id: Self.gatewayID))
        #expect(before.links.isEmpty)
        try await reader.close()

        let store = try SQLiteTraceStore(path: directory.storePath)
        try await store.consume([try Self.requests().agent])
        let after = try #require(try await store.storedTrace(id: Self.gatewayID))
        #expect(after.calledBy == [Self.link])
    }
}
