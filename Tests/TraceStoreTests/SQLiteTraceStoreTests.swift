import Foundation
import GRDB
import Logging
import Metrics
import OTLPWire
import Testing
import TraceAssembler
import TraceEdge
@testable import SQLiteStore
@testable import TraceModel

@Suite struct SQLiteTraceStoreTests {
    static let fixtureRequestID = "tr-3bb6c5d66706eddb63619b9d8070258a"

    /// Fixture 01 and 02 decoded as the receiver would (each request names experiment 1).
    static func fixtureSpans() throws -> (a: [SpanRecord], b: [SpanRecord]) {
        (try Fixtures.batch(Fixtures.serviceA, experimentID: "1").spans, try Fixtures.batch(Fixtures.serviceB, experimentID: "1").spans)
    }

    static func finished(_ spans: [SpanRecord], _ reason: ReleaseReason, experimentID: String? = "7") -> FinishedTrace {
        FinishedTrace(traceID: spans[0].traceID, spans: spans, reason: reason, isComplete: reason == .closed, experimentID: experimentID)
    }

    @Test func releasingMemoryKeepsTheStoreWritableAndReadable() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let (a, b) = try Self.fixtureSpans()
        try await store.consume([Self.finished(a, .closed)])
        await store.releaseMemory()
        try await store.consume([Self.finished(b, .late)])
        await store.releaseMemory()
        let stored = try #require(try store.trace(id: Self.fixtureRequestID))
        #expect(stored.spans.count == a.count + b.count)
    }

    // MARK: Fixture 13

    @Test func oneFinishedTraceOfFixtures01And02IsStoredExactlyAsMLflowStoredFixture03() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let (a, b) = try Self.fixtureSpans()
        try await store.consume([Self.finished(a + b, .closed)])

        let expected = try StoredRows.fixture()
        let stored = try StoredRows.read(store, requestID: Self.fixtureRequestID)
        #expect(stored.trace_info == expected.trace_info)
        #expect(stored.comparableTags == expected.comparableTags)
        #expect(stored.tag("stitch.completeness") == "closed")
        #expect(stored.tag("stitch.services") == "service-a,service-b")
        #expect(stored.trace_request_metadata == expected.trace_request_metadata)
        #expect(stored.spans.count == expected.spans.count)
        for (mine, theirs) in zip(stored.spans, expected.spans) {
            #expect(mine == theirs, "span \(theirs.name ?? "")")
            #expect(mine.content == theirs.content)
        }
    }

    /// Writes 40 transactions of 2 traces × 10 spans of ~3 KB: ~100 KB of WAL each, ~4 MB in all.
    static func writeLargeTraces(_ store: SQLiteTraceStore, walSize: () -> Int) async throws -> Int {
        let text = AnyValue.string(String(repeating: "x", count: 3000))
        var largest = 0
        for batch in 0..<40 {
            let traces = (0..<2).map { index in
                let trace = TraceID(high: UInt64(batch + 1), low: UInt64(index + 1))
                return Build.trace((1...10).map { (Build.span(UInt64($0), parent: $0 == 1 ? 0 : 1, trace: trace, start: 1, end: 2,
                                                              attributes: [("payload", text)]), nil) }, trace: trace)
            }
            _ = try await store.write(traces)
            largest = max(largest, walSize())
        }
        let stored = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM spans") }
        #expect(stored == 800)
        return largest
    }

    static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0
    }

    @Test func theWriterLetsTheWALRestartOnceItPassesItsBound() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // No checkpointer: only the writer's bound keeps the WAL from growing.
        let store = try SQLiteTraceStore(path: directory.storePath, defaultExperimentID: "0", readOnly: false,
                                         logger: Logger(label: "test"), metrics: MetricsSystem.factory,
                                         walRestartBytes: 256 * 1024, backgroundCheckpoints: false)
        let largest = try await Self.writeLargeTraces(store) { Self.fileSize(directory.storePath + "-wal") }
        // 256 KiB plus the transaction that crossed the bound (~300 KB in 16 KiB pages); without
        // the bound the WAL holds every transaction (over 5 MB).
        #expect(largest < 1024 * 1024, "largest WAL \(largest) bytes")
    }

    @Test func theCheckpointerCopiesCommittedPagesIntoTheFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // A bound the writer never reaches: only the checkpointer copies pages into the file.
        let store = try SQLiteTraceStore(path: directory.storePath, defaultExperimentID: "0", readOnly: false,
                                         logger: Logger(label: "test"), metrics: MetricsSystem.factory,
                                         walRestartBytes: 1 << 40, backgroundCheckpoints: true)
        _ = try await Self.writeLargeTraces(store) { 0 }
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.fileSize(directory.storePath) < 3_000_000, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(Self.fileSize(directory.storePath) >= 3_000_000)
    }

    @Test func aLateFragmentMergesIntoTheSameResult() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let (a, b) = try Self.fixtureSpans()
        try await store.consume([Self.finished(a, .closed)])
        let first = try StoredRows.read(store, requestID: Self.fixtureRequestID)
        #expect(first.trace_info.first?.execution_time_ms == Int64(1_795_288_735_080 - 1_795_288_735_064))
        #expect(first.tag("stitch.services") == nil)

        try await store.consume([Self.finished(b, .late, experimentID: nil)])
        let expected = try StoredRows.fixture()
        let merged = try StoredRows.read(store, requestID: Self.fixtureRequestID)
        var info = try #require(merged.trace_info.first)
        #expect(info.db_payload_generation == 2)
        info.db_payload_generation = expected.trace_info[0].db_payload_generation
        #expect(info == expected.trace_info[0])
        #expect(merged.comparableTags == expected.comparableTags)
        #expect(merged.tag("stitch.completeness") == "closed")
        #expect(merged.tag("stitch.services") == "service-a,service-b")
        #expect(merged.spans == expected.spans)
    }

    @Test func theMLflowJSONMatchesWhatMLflowReturnsForFixture03() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let (a, b) = try Self.fixtureSpans()
        try await store.consume([Self.finished(a + b, .closed)])
        let trace = try #require(try store.trace(id: Self.fixtureRequestID))

        let mine = try #require(try JSONSerialization.jsonObject(with: trace.mlflowJSON()) as? [String: Any])
        let theirs = try #require(try JSONSerialization.jsonObject(with: Fixtures.data(Fixtures.storedJSON)) as? [String: Any])
        var myInfo = try #require(mine["info"] as? [String: Any])
        var theirInfo = try #require(theirs["info"] as? [String: Any])
        var myTags = try #require(myInfo.removeValue(forKey: "tags") as? [String: String])
        var theirTags = try #require(theirInfo.removeValue(forKey: "tags") as? [String: String])
        myTags = myTags.filter { !$0.key.hasPrefix("stitch.") }
        theirTags["mlflow.artifactLocation"] = nil
        #expect(myTags == theirTags)
        #expect(NSDictionary(dictionary: myInfo).isEqual(to: theirInfo))
        #expect(Array(myInfo.keys).sorted() == Array(theirInfo.keys).sorted())
        let mySpans = try #require((mine["data"] as? [String: Any])?["spans"] as? [Any])
        let theirSpans = try #require((theirs["data"] as? [String: Any])?["spans"] as? [Any])
        #expect(NSArray(array: mySpans).isEqual(to: theirSpans))
        #expect(trace.spans.map(\.serviceName) == ["service-a", "service-a", "service-a", "service-b", "service-b"])
        #expect(trace.spans.map(\.name) == ["A-root", "A-call-B", "A-postprocess", "B-handler", "B-db"])
    }

    @Test func aRemoteServerBeforeItsClientRootBecomesOneFinishedTrace() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let server = try Fixtures.batch(Fixtures.mlflowRemoteServer).spans
        let client = try Fixtures.batch(Fixtures.mlflowClientRoot).spans
        let requestID = MLflowSpan.requestID(for: server[0].traceID)

        try await store.consume([Self.finished(server, .timeout, experimentID: nil)])
        let partial = try #require(try store.trace(id: requestID))
        #expect(partial.info.status == "IN_PROGRESS")
        #expect(partial.info.requestPreview == nil)
        #expect(partial.spans.count == 2)

        try await store.consume([Self.finished(client, .late, experimentID: nil)])
        let whole = try #require(try store.trace(id: requestID))
        #expect(whole.info.status == "OK")
        #expect(whole.spans.count == 3)
        #expect(whole.spans.first?.name == "client-root")
        #expect(whole.spans.first?.type == "CHAIN")
        #expect(whole.info.timestampMs == 1_795_288_683_910)
        #expect(whole.info.executionTimeMs == Int64(1_795_288_683_950 - 1_795_288_683_910))
        #expect(whole.info.requestPreview == #"{"question": "life?"}"#)
        #expect(whole.info.responsePreview == #"{"answer": 42, "q": "life?"}"#)
        #expect(whole.info.tags["stitch.completeness"] == "timeout")
        #expect(whole.info.experimentID == "0")
        #expect(try store.search(TraceQuery()).traces.count == 1)
    }

    // MARK: Writes and merges

    @Test func sendingTheSameSpansAgainChangesNothing() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let (a, b) = try Self.fixtureSpans()
        try await store.consume([Self.finished(a + b, .closed)])
        let once = try StoredRows.read(store, requestID: Self.fixtureRequestID)
        try await store.consume([Self.finished(a, .late), Self.finished(b + a, .late)])
        var twice = try StoredRows.read(store, requestID: Self.fixtureRequestID)
        #expect(twice.trace_info[0].db_payload_generation == 3)
        twice.trace_info[0].db_payload_generation = once.trace_info[0].db_payload_generation
        #expect(twice.trace_info == once.trace_info)
        #expect(Set(twice.trace_tags) == Set(once.trace_tags))
        #expect(twice.spans == once.spans)
    }

    @Test func aLaterRootReplacesTheTagsTakenFromTheEarliestSpan() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let resourceA = Build.resource([("service.name", "frontend"), ("region", "eu")])
        let resourceB = Build.resource([("service.name", "backend"), ("tier", "db")])
        let child = Build.span(2, parent: 1, start: 2_000_000, end: 3_000_000)
        _ = try await store.write([Build.trace([(child, resourceB)], reason: .timeout, experimentID: 3)])
        let before = try #require(try store.trace(id: MLflowSpan.requestID(for: Build.traceID)))
        #expect(before.info.tags["tier"] == "db")
        #expect(before.info.tags["service.name"] == "backend")
        #expect(before.info.experimentID == "3")

        let root = Build.span(1, start: 1_000_000, end: 5_000_000, attributes: [("mlflow.spanInputs", .string("in"))])
        _ = try await store.write([Build.trace([(root, resourceA)], reason: .late, experimentID: 9)])
        let after = try #require(try store.trace(id: MLflowSpan.requestID(for: Build.traceID)))
        #expect(after.info.tags["tier"] == nil)
        #expect(after.info.tags["service.name"] == "frontend")
        #expect(after.info.tags["region"] == "eu")
        #expect(after.info.tags["stitch.services"] == "backend,frontend")
        #expect(after.info.experimentID == "3", "a trace keeps its experiment")
        #expect(after.info.requestPreview == #""in""#)
        #expect(after.info.timestampMs == 1)
        #expect(after.info.executionTimeMs == 4)
        #expect(after.spans.map(\.serviceName) == ["frontend", "backend"])
    }

    @Test func sessionUserTokensAndTraceTagsAreStoredAndReadBackAsMLflowMetadata() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let root = Build.span(1, start: 1_000_000, end: 9_000_000, attributes: [
            ("session.id", .string("conv-7")), ("user.id", .string("alice")),
            ("mlflow.traceTag.team", .string(#""search""#)), ("mlflow.traceTag.mlflow.traceName", .string("checkout")),
        ])
        let llm = Build.span(2, parent: 1, start: 2_000_000, end: 3_000_000, attributes: [
            ("gen_ai.operation.name", .string("chat")), ("gen_ai.usage.input_tokens", .int(11)), ("gen_ai.usage.output_tokens", .int(4)),
            ("mlflow.llm.cost", .string(#"{"input_cost": 0.5, "output_cost": 0.25, "total_cost": 0.75}"#)),
        ])
        _ = try await store.write([Build.trace([(root, nil), (llm, nil)])])
        let requestID = MLflowSpan.requestID(for: Build.traceID)
        let rows = try StoredRows.read(store, requestID: requestID)
        let info = try #require(rows.trace_info.first)
        #expect(info.session_id == "conv-7")
        #expect(info.trace_name == "checkout")
        #expect([info.input_tokens, info.output_tokens, info.total_tokens] == [11, 4, 15])
        #expect([info.input_cost, info.output_cost, info.total_cost] == [0.5, 0.25, 0.75])
        #expect(rows.trace_request_metadata == [StoredRows.TagRow(key: "mlflow.trace.user", value: "alice", request_id: requestID)])
        #expect(rows.tag("team") == "search")
        #expect(rows.tag("mlflow.traceName") == nil, "MLflow keeps the trace name in its column")
        #expect(rows.spans.first { $0.span_id == SpanID(raw: 2).hex }?.type == "CHAT_MODEL")
        #expect(rows.spans.first { $0.span_id == SpanID(raw: 2).hex }?.total_cost == 0.75)

        let record = try #require(try store.trace(id: requestID)).info
        #expect(record.sessionID == "conv-7")
        #expect(record.tags["mlflow.traceName"] == "checkout")
        #expect(record.metadata == [
            "mlflow.trace.user": "alice", "mlflow.trace.session": "conv-7",
            "mlflow.trace.tokenUsage": #"{"input_tokens": 11, "output_tokens": 4, "total_tokens": 15}"#,
            "mlflow.trace.cost": #"{"input_cost": 0.5, "output_cost": 0.25, "total_cost": 0.75}"#,
        ])
    }

    @Test func previewsInTheStoreAreCutAtOneThousandCharacters() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let long = String(repeating: "ab", count: 800)
        let root = Build.span(1, start: 1, end: 2, attributes: [("mlflow.spanInputs", .string(long)), ("mlflow.spanOutputs", .string("short"))])
        _ = try await store.write([Build.trace([(root, nil)])])
        let info = try #require(try store.trace(id: MLflowSpan.requestID(for: Build.traceID))).info
        #expect(info.requestPreview?.count == 1000)
        // The stored attribute is the JSON string (quotes included), and that is what MLflow previews.
        #expect(info.requestPreview == "\"" + String(long.prefix(996)) + "...")
        #expect(info.responsePreview == #""short""#)
    }

    @Test func unknownExperimentsAreCreatedNamedAfterTheirID() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath, defaultExperimentID: "5")
        _ = try await store.write([
            Build.trace([(Build.span(1, start: 1, end: 2), nil)], experimentID: 42),
            Build.trace([(Build.span(1, trace: TraceID(high: 9, low: 9), start: 1, end: 2), nil)], trace: TraceID(high: 9, low: 9)),
        ])
        let experiments = try await store.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT experiment_id, name, lifecycle_stage FROM experiments ORDER BY experiment_id")
                .map { "\($0["experiment_id"] as Int64):\($0["name"] as String):\($0["lifecycle_stage"] as String)" }
        }
        #expect(experiments == ["0:Default:active", "5:5:active", "42:42:active"])
        #expect(try store.search(TraceQuery(experimentIDs: ["5"])).traces.map(\.requestID) == ["tr-00000000000000090000000000000009"])
    }

    @Test func nonNumericExperimentIDsGoToTheDefault() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let (a, _) = try Self.fixtureSpans()
        try await store.consume([Self.finished(a, .closed, experimentID: "abc")])
        #expect(try store.trace(id: Self.fixtureRequestID)?.info.experimentID == "0")
        #expect(throws: StoreError.self) { try SQLiteTraceStore(path: directory.storePath, defaultExperimentID: "x") }
    }

    @Test func theSchemaIsCreatedOnceWithWALAndNormalSync() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let pageSize = try await store.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_size") }
        #expect(pageSize == SQLiteTraceStore.newStorePageSize)
        let (journal, synchronous, indexes, columns) = try await store.pool.read { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"),
             try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name"),
             try Row.fetchAll(db, sql: "PRAGMA table_xinfo(spans)").map { $0["name"] as String })
        }
        #expect(journal == "wal")
        #expect(synchronous == 1)
        #expect(indexes == ["index_stitch_trace_links_linked_request_id", "index_trace_info_experiment_id_session_id",
                            "index_trace_info_experiment_id_timestamp_ms", "index_trace_info_timestamp_ms_request_id"])
        #expect(columns == ["trace_id", "experiment_id", "span_id", "parent_span_id", "name", "type", "status",
                            "start_time_unix_nano", "end_time_unix_nano", "duration_ns", "content", "input_cost", "output_cost",
                            "total_cost", "model_name", "model_provider", "stitch_resource_id"])
        let reopened = try SQLiteTraceStore(path: directory.storePath)
        #expect(try await reopened.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM experiments") } == 1)
    }

    @Test func metricsCountTracesSpansAndLatency() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let metrics = RecordingMetrics()
        let store = try SQLiteTraceStore(path: directory.storePath, metrics: metrics)
        let (a, b) = try Self.fixtureSpans()
        try await store.consume([Self.finished(a, .closed)])
        try await store.consume([Self.finished(b, .late)])
        #expect(metrics.total("stitch_store_traces_written_total") == 2)
        #expect(metrics.total("stitch_store_spans_written_total") == 5)
        #expect(metrics.values("stitch_store_write_seconds").count == 2)
        #expect(metrics.values("stitch_store_write_seconds").allSatisfy { $0 > 0 })
        #expect(metrics.total("stitch_store_write_errors_total") == 0)

        let reader = try SQLiteTraceStore(path: directory.storePath, readOnly: true, metrics: metrics)
        await #expect(throws: StoreError.self) { try await reader.consume([Self.finished(a, .closed)]) }
        #expect(metrics.total("stitch_store_write_errors_total") == 1)
    }

    // MARK: Reads

    /// 25 traces over 12 distinct timestamps (so that pages split inside runs of equal timestamps),
    /// alternately OK / ERROR, in two experiments.
    static func populate(_ store: SQLiteTraceStore) async throws -> [String] {
        var traces: [PreparedTrace] = []
        for index in 0..<25 {
            let id = TraceID(high: 0xabc, low: UInt64(index))
            let startNs = UInt64(1_000 + index / 2) * 1_000_000
            let root = Build.span(1, trace: id, name: "root-\(index % 3)", start: startNs, end: startNs + UInt64(index) * 1_000_000,
                                  status: index % 2 == 0 ? 1 : 2, attributes: [
                                      ("session.id", .string("s-\(index % 4)")), ("mlflow.spanType", .string(index % 5 == 0 ? "AGENT" : "CHAIN")),
                                  ])
            let resource = Build.resource([("service.name", "svc-\(index % 2)"), ("note", index == 7 ? "it's \"quoted\"" : "plain")])
            traces.append(Build.trace([(root, resource)], experimentID: index < 20 ? 1 : 2, trace: id))
        }
        _ = try await store.write(traces)
        return (0..<25).map { MLflowSpan.requestID(for: TraceID(high: 0xabc, low: UInt64($0))) }
    }

    @Test func pagesCoverEveryTraceOnceNewestFirst() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let all = try await Self.populate(store)
        var seen: [TraceInfoRecord] = []
        var token: String?
        var pages = 0
        repeat {
            let page = try store.search(TraceQuery(maxResults: 7, pageToken: token))
            #expect(page.traces.count <= 7)
            seen += page.traces
            token = page.nextPageToken
            pages += 1
        } while token != nil && pages < 10
        #expect(pages == 4)
        #expect(seen.count == all.count)
        #expect(Set(seen.map(\.requestID)) == Set(all))
        let keys = seen.map { ($0.timestampMs, $0.requestID) }
        #expect(zip(keys, keys.dropFirst()).allSatisfy { $0 > $1 }, "strictly newest first")

        let filtered = try store.search(TraceQuery(experimentIDs: ["1"], filter: "status = 'OK'", maxResults: 3))
        #expect(filtered.traces.count == 3)
        #expect(throws: StoreError.self) {
            try store.search(TraceQuery(experimentIDs: ["1"], filter: "status = 'ERROR'", pageToken: filtered.nextPageToken))
        }
        #expect(throws: StoreError.self) { try store.search(TraceQuery(pageToken: "garbage")) }
        #expect(try store.search(TraceQuery(maxResults: 0)).traces.count == 1)
        #expect(try store.search(TraceQuery(maxResults: 5000)).traces.count == 25)
    }

    @Test func filtersSelectTheMatchingTraces() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        let all = try await Self.populate(store)
        func matching(_ filter: String, experiments: [String] = []) throws -> Set<String> {
            Set(try store.search(TraceQuery(experimentIDs: experiments, filter: filter, maxResults: 1000)).traces.map(\.requestID))
        }
        func expected(_ predicate: (Int) -> Bool) -> Set<String> { Set((0..<25).filter(predicate).map { all[$0] }) }

        #expect(try matching("status = 'OK'") == expected { $0 % 2 == 0 })
        #expect(try matching("trace.status != 'OK'") == expected { $0 % 2 == 1 })
        #expect(try matching("tag.`service.name` = 'svc-1'") == expected { $0 % 2 == 1 })
        #expect(try matching("tags.service.name != 'svc-1'") == expected { $0 % 2 == 0 })
        #expect(try matching(#"tag.note = 'it''s "quoted"'"#) == expected { $0 == 7 })
        #expect(try matching(#"tag.note = "it's \"quoted\"""#) == expected { $0 == 7 })
        #expect(try matching("timestamp_ms >= 1010") == expected { $0 / 2 >= 10 })
        #expect(try matching("trace.timestamp_ms < 1001") == expected { $0 / 2 < 1 })
        #expect(try matching("execution_time_ms > 20") == expected { $0 > 20 })
        #expect(try matching("trace.session_id = 's-3'") == expected { $0 % 4 == 3 })
        #expect(try matching("span.name = 'root-2'") == expected { $0 % 3 == 2 })
        #expect(try matching("span.type = 'AGENT'") == expected { $0 % 5 == 0 })
        #expect(try matching("span.type = 'AGENT' AND status = 'OK' and tag.`service.name` = 'svc-0'") == expected { $0 % 10 == 0 })
        #expect(try matching("status = 'OK'", experiments: ["2"]) == expected { $0 >= 20 && $0 % 2 == 0 })
        #expect(try matching("tag.note = 'nothing'").isEmpty)
        #expect(throws: FilterError.self) { try store.search(TraceQuery(filter: "status = 'OK' bogus")) }
        #expect(throws: StoreError.self) { try store.search(TraceQuery(experimentIDs: ["one"])) }
    }

    @Test func traceByIDIsNilWhenAbsent() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteTraceStore(path: directory.storePath)
        #expect(try store.trace(id: "tr-00000000000000000000000000000000") == nil)
    }

    // MARK: Read-only

    @Test func aReadOnlyStoreReadsWhileAnotherWrites() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let writer = try SQLiteTraceStore(path: directory.storePath)
        let reader = try SQLiteTraceStore(path: directory.storePath, readOnly: true)
        #expect(try reader.search(TraceQuery()).traces.isEmpty)
        let (a, b) = try Self.fixtureSpans()
        try await writer.consume([Self.finished(a, .closed)])
        #expect(try reader.trace(id: Self.fixtureRequestID)?.spans.count == 3)

        // A read transaction open in the reader does not block the writer (WAL), and sees its snapshot.
        try await reader.pool.read { db in
            let before = try Int.fetchOne(db, sql: "SELECT count(*) FROM spans")
            try writer.pool.writeWithoutTransaction { writerDB in
                try writerDB.inTransaction {
                    try writerDB.execute(sql: "UPDATE trace_info SET execution_time_ms = execution_time_ms")
                    return .commit
                }
            }
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM spans") == before)
        }
        try await writer.consume([Self.finished(b, .late)])
        #expect(try reader.trace(id: Self.fixtureRequestID)?.spans.count == 5)
        #expect(try reader.search(TraceQuery(filter: "span.name = 'B-db'")).traces.count == 1)
    }

    @Test func aReadOnlyStoreOpensAfterTheWriterHasClosed() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        do {
            let writer = try SQLiteTraceStore(path: directory.storePath)
            let (a, _) = try Self.fixtureSpans()
            try await writer.consume([Self.finished(a, .closed)])
        }
        let reader = try SQLiteTraceStore(path: directory.storePath, readOnly: true)
        #expect(try reader.search(TraceQuery()).traces.count == 1)
    }

    @Test func aMissingDatabaseSaysThereIsNoDataYetAndWhere() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.url.appendingPathComponent("nothing/here.db").path
        do {
            _ = try SQLiteTraceStore(path: path, readOnly: true)
            Issue.record("opening a missing store read-only must fail")
        } catch let error as StoreError {
            #expect(error.message.contains("no data yet"))
            #expect(error.message.contains(path))
        }
        #expect(!FileManager.default.fileExists(atPath: path), "a read-only open creates nothing")
    }
}
