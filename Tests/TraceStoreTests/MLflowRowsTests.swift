import OTLPWire
import Testing
import TraceModel

/// The rules by which the `mlflow_database` destination merges a batch into a trace MLflow already
/// holds (MLflow 3.17's `_log_spans_once`), without a database: the interop suite checks the rows
/// against a real `mlflow server`.
@Suite("MLflow database rows")
struct MLflowRowsTests {
    private static let ms: UInt64 = 1_000_000
    private var ms: UInt64 { Self.ms }

    private static func stored(timestamp: Int64 = 2_000, execution: Int64? = 1_000, status: String = "IN_PROGRESS",
                               finalized: Bool = false, spansLocation: String? = "TRACKING_STORE",
                               tokens: Bool = false) -> MLflowStoredTrace {
        MLflowStoredTrace(experimentID: 1, timestampMs: timestamp, executionTimeMs: execution, status: status,
                          spansLocation: spansLocation, finalized: finalized, hasTokenUsage: tokens, hasCost: false)
    }

    /// A root from 1,000 ms to 5,000 ms.
    private static func rootTrace(status: Int32 = 1, attributes: [(String, AnyValue)] = []) -> PreparedTrace {
        Build.trace([(Build.span(1, start: 1_000 * ms, end: 5_000 * ms, status: status, attributes: attributes), nil)])
    }

    private static func usage(_ input: Int, _ output: Int) -> (String, AnyValue) {
        ("mlflow.chat.tokenUsage",
         .string("{\"input_tokens\": \(input), \"output_tokens\": \(output), \"total_tokens\": \(input + output)}"))
    }

    @Test("a late root widens the stored times and finishes an IN_PROGRESS trace")
    func lateRootFinishes() {
        let update = MLflowRows.update(Self.rootTrace(), stored: Self.stored(), storedSpans: [])
        #expect(update.timestampMs == 1_000)
        #expect(update.executionTimeMs == 4_000)
        #expect(update.status == "OK")
    }

    @Test("a fragment ending after the stored trace extends it; one inside it changes nothing")
    func fragmentsWidenOnly() {
        let later = Build.trace([(Build.span(7, parent: 1, start: 2_500 * ms, end: 9_000 * ms), nil)])
        let widened = MLflowRows.update(later, stored: Self.stored(), storedSpans: [])
        #expect(widened.timestampMs == 2_000)
        #expect(widened.executionTimeMs == 7_000)
        #expect(widened.status == "IN_PROGRESS")

        let inside = Build.trace([(Build.span(8, parent: 1, start: 2_100 * ms, end: 2_200 * ms), nil)])
        let same = MLflowRows.update(inside, stored: Self.stored(), storedSpans: [])
        #expect(same.timestampMs == 2_000)
        #expect(same.executionTimeMs == 1_000)
    }

    @Test("a finished status is kept: only IN_PROGRESS and STATE_UNSPECIFIED take the root's")
    func statusOnlyFromUnfinished() {
        #expect(MLflowRows.update(Self.rootTrace(), stored: Self.stored(status: "ERROR"), storedSpans: []).status == "ERROR")
        #expect(MLflowRows.update(Self.rootTrace(status: 2), stored: Self.stored(status: "STATE_UNSPECIFIED"),
                                  storedSpans: []).status == "ERROR")
    }

    @Test("a trace MLflow finalized keeps its times and its token usage")
    func finalizedKeepsTimes() {
        let trace = Self.rootTrace(attributes: [Self.usage(3, 4)])
        let update = MLflowRows.update(trace, stored: Self.stored(finalized: true, tokens: true), storedSpans: [])
        #expect(update.timestampMs == 2_000)
        #expect(update.executionTimeMs == 1_000)
        #expect(update.tokenUsage.isEmpty)
        #expect(!MLflowRows.needsStoredSpans(trace, Self.stored(finalized: true, tokens: true)))
    }

    @Test("token usage is summed over the stored spans and the batch's, a span in both counted once")
    func tokensOverTheWholeTrace() {
        let trace = Build.trace([(Build.span(2, parent: 1, start: 1_500 * ms, end: 1_600 * ms, attributes: [Self.usage(10, 5)]), nil)])
        #expect(MLflowRows.needsStoredSpans(trace, Self.stored()))
        let storedSpans = [
            Build.facts(Build.span(3, parent: 1, start: 2_000 * ms, end: 2_100 * ms, attributes: [Self.usage(1, 2)])),
            // The batch's own span, stored by an earlier write with other figures: the batch's copy counts.
            Build.facts(Build.span(2, parent: 1, start: 1_500 * ms, end: 1_600 * ms, attributes: [Self.usage(100, 100)])),
        ]
        let update = MLflowRows.update(trace, stored: Self.stored(), storedSpans: storedSpans)
        #expect(update.tokenUsage["input_tokens"] == 11)
        #expect(update.tokenUsage["output_tokens"] == 7)
        #expect(update.tokenUsage["total_tokens"] == 18)
    }

    @Test("the SET list: times and status replaced, previews and session only where NULL, the rest when given")
    func assignments() {
        let sql = MLflowTraceUpdate.assignments(old: { "t.\($0)" }, value: { "u.\($0)" })
        #expect(sql.hasPrefix("db_payload_generation = t.db_payload_generation + 1, "))
        #expect(sql.contains("status = u.status"))
        #expect(sql.contains("request_preview = COALESCE(t.request_preview, u.request_preview)"))
        #expect(sql.contains("session_id = COALESCE(t.session_id, u.session_id)"))
        #expect(sql.contains("trace_name = COALESCE(u.trace_name, t.trace_name)"))
        #expect(sql.contains("input_tokens = COALESCE(u.input_tokens, t.input_tokens)"))
        #expect(MLflowTraceUpdate.columns.map(\.name) == StoreTables.traceInfoValueColumns)
    }

    @Test("tags: no stitch.* tag, the artifact location only for a new trace")
    func tags() {
        let trace = Build.trace([(Build.span(1, start: 1_000 * ms, end: 2_000 * ms),
                                  Build.resource([("service.name", "planner")]))])
        let experiment = MLflowExperiment(id: 4, artifactLocation: "file:///tmp/mlruns/4/")
        let new = MLflowRows.tags(trace, newIn: experiment)
        #expect(new.first?.key == "mlflow.artifactLocation")
        #expect(new.first?.value == "file:///tmp/mlruns/4/traces/\(trace.requestID)/artifacts")
        #expect(new.contains { $0.key == "mlflow.trace.spansLocation" && $0.value == "TRACKING_STORE" })
        #expect(!new.contains { $0.key.hasPrefix("stitch.") })
        #expect(trace.derivedAsNew.tags.contains { $0.key.hasPrefix("stitch.") })
        #expect(!MLflowRows.tags(trace, newIn: nil).contains { $0.key == "mlflow.artifactLocation" })
        #expect(MLflowExperiment(id: 0, artifactLocation: "").traceArtifactLocation("tr-1") == nil)
    }

    @Test("a trace whose spans MLflow keeps elsewhere is refused")
    func refusesOtherSpanLocations() {
        let trace = Self.rootTrace()
        #expect(MLflowRows.refusal(trace, Self.stored()) == nil)
        #expect(MLflowRows.refusal(trace, Self.stored(spansLocation: nil)) == nil)
        #expect(MLflowRows.refusal(trace, Self.stored(spansLocation: "ARTIFACT_REPO"))?.contains("ARTIFACT_REPO") == true)
    }

    @Test("schema revisions: the known ones are accepted, others refused naming the revision and the versions")
    func schemaCheck() throws {
        #expect(try MLflowSchema.check(revision: "dc11669786a5", database: "db").kindInContent == false)
        #expect(try MLflowSchema.check(revision: "f4a9b2c7d1e6", database: "db").kindInContent == true)
        do {
            _ = try MLflowSchema.check(revision: "0123456789ab", database: "mlflow.db")
            Issue.record("an unknown revision was accepted")
        } catch {
            #expect(error.description.contains("0123456789ab"))
            #expect(error.description.contains("3.17.2"))
            #expect(error.description.contains("never migrates"))
        }
        #expect(throws: StoreError.self) { try MLflowSchema.check(revision: nil, database: "db") }
    }

    @Test("rounds hold each id once, in id order; a span sent twice keeps its last copy")
    func roundsAndLastCopies() {
        let a = Build.trace([(Build.span(1, start: 0, end: ms), nil)], trace: TraceID(high: 0, low: 2))
        let b = Build.trace([(Build.span(1, start: 0, end: ms), nil)], trace: TraceID(high: 0, low: 1))
        let rounds = PreparedTrace.rounds([a, b, a])
        #expect(rounds.map { $0.map(\.requestID) } == [[b.requestID, a.requestID], [a.requestID]])

        let twice = Build.trace([(Build.span(1, start: 0, end: ms), nil), (Build.span(2, parent: 1, start: 0, end: ms), nil),
                                 (Build.span(1, start: 0, end: 2 * ms), nil)])
        #expect(twice.lastCopyIndexes == [1, 2])
    }
}
