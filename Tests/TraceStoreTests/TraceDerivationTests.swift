import OTLPWire
import Testing
@testable import SQLiteStore
@testable import TraceModel

@Suite struct TraceDerivationTests {
    static let resourceA = StoredResource(detail: Build.resource([
        ("telemetry.sdk.name", "opentelemetry"), ("service.name", "svc-a"), ("deployment.environment", "prod"),
        ("mlflow.secret", "x"),
    ]))
    static let resourceB = StoredResource(detail: Build.resource([("service.name", "svc-b"), ("team", "b")]))
    static let resources: [Int64: StoredResource] = [1: resourceA, 2: resourceB]

    @Test func timesStatusAndPreviewsComeFromTheSpansAndTheRoot() {
        let root = Build.span(1, start: 1_000_400_000, end: 1_900_000_000, status: 2, attributes: [
            ("mlflow.spanInputs", .string(#"{"question": "q"}"#)), ("mlflow.spanOutputs", .string("4")),
        ])
        let child = Build.span(2, parent: 1, start: 1_500_000_000, end: 2_300_999_999, status: 1)
        let derived = TraceDerivation.derive(spans: [Build.facts(child), Build.facts(root)], resources: [:], completeness: "closed")
        #expect(derived.timestampMs == 1000)
        #expect(derived.executionTimeMs == Int64(2300 - 1000))
        #expect(derived.status == "ERROR")
        #expect(derived.requestPreview == #"{"question": "q"}"#)
        #expect(derived.responsePreview == #""4""#)
    }

    @Test func withoutRootTheTraceIsInProgressWithoutPreviews() {
        let child = Build.span(2, parent: 1, start: 5_000_000, end: 6_000_000, attributes: [("mlflow.spanInputs", .string("x"))])
        let derived = TraceDerivation.derive(spans: [Build.facts(child)], resources: [:], completeness: "timeout")
        #expect(derived.status == "IN_PROGRESS")
        #expect(derived.requestPreview == nil)
        #expect(derived.tagDictionary["stitch.completeness"] == "timeout")
    }

    @Test func okAndUnsetRootsGiveOK() {
        for status: Int32 in [0, 1] {
            let root = Build.span(1, start: 1, end: 2, status: status)
            #expect(TraceDerivation.derive(spans: [Build.facts(root)], resources: [:], completeness: "closed").status == "OK")
        }
    }

    // Expected previews were printed by MLflow's `_get_truncated_preview(value, role=…)`.
    @Test(arguments: [
        (#"{"question": "q"}"#, #"{"question": "q"}"#, #"{"question": "q"}"#),
        (#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "c"}]}]}"#, "c", "b"),
        (#"{"choices": [{"message": {"role": "assistant", "content": "d"}}]}"#, "d", "d"),
        (#"{"input": [{"role": "user", "content": "e"}]}"#, "e", "e"),
        (#"{"output": [{"role": "assistant", "content": "f"}]}"#, "f", "f"),
        (#"{"request": {"input": [{"role": "user", "content": "g"}]}}"#, "g", "g"),
        (#"{"messages": [{"role": "user", "content": ""}]}"#, #"{"messages": [{"role": "user", "content": ""}]}"#, #"{"messages": [{"role": "user", "content": ""}]}"#),
        (#"{"messages": []}"#, #"{"messages": []}"#, #"{"messages": []}"#),
        (#""plain""#, #""plain""#, #""plain""#),
        ("not json", "not json", "not json"),
    ])
    func previewsFollowMLflow(value: String, user: String, assistant: String) {
        #expect(TraceDerivation.preview(value, role: "user") == user)
        #expect(TraceDerivation.preview(value, role: "assistant") == assistant)
    }

    @Test func previewsAreCutAtOneThousandCharacters() {
        let long = String(repeating: "x", count: 1200)
        #expect(TraceDerivation.preview(long, role: "user") == String(repeating: "x", count: 997) + "...")
        let exact = String(repeating: "é", count: 1000)
        #expect(TraceDerivation.preview(exact, role: "user") == exact)
        let accented = String(repeating: "é", count: 1001)
        #expect(TraceDerivation.preview(accented, role: "user") == String(repeating: "é", count: 997) + "...")
    }

    @Test func sessionAndUserComeFromTheEarliestSpanThatHasThem() {
        let root = Build.span(1, start: 10, end: 100)
        let early = Build.span(2, parent: 1, start: 20, end: 30, attributes: [
            ("gen_ai.conversation.id", .string("conv-1")), ("user.id", .int(42)),
        ])
        let late = Build.span(3, parent: 1, start: 40, end: 50, attributes: [
            ("session.id", .string("sess-2")), ("user.id", .string("alice")),
        ])
        let derived = TraceDerivation.derive(spans: [root, late, early].map { Build.facts($0) }, resources: [:], completeness: "closed")
        #expect(derived.sessionID == "conv-1")
        #expect(derived.userID == "42")
        let both = Build.span(4, start: 1, end: 2, attributes: [("session.id", .string("s")), ("gen_ai.conversation.id", .string("c"))])
        #expect(TraceDerivation.derive(spans: [Build.facts(both)], resources: [:], completeness: "closed").sessionID == "s")
    }

    @Test func overlongSessionIDsAreIgnored() {
        let span = Build.span(1, start: 1, end: 2, attributes: [("session.id", .string(String(repeating: "s", count: 251)))])
        #expect(TraceDerivation.derive(spans: [Build.facts(span)], resources: [:], completeness: "closed").sessionID == nil)
    }

    @Test func tokenUsageIsSummedWithoutCountingRolledUpChildrenTwice() {
        let root = Build.span(1, start: 1, end: 100)
        // An agent span carrying cumulative usage of its LLM child: the child is not added again.
        let agent = Build.span(2, parent: 1, start: 2, end: 90, attributes: [
            ("mlflow.chat.tokenUsage", .string(#"{"input_tokens": 30, "output_tokens": 12, "total_tokens": 42}"#)),
        ])
        let agentChild = Build.span(3, parent: 2, start: 3, end: 80, attributes: [
            ("gen_ai.usage.input_tokens", .int(30)), ("gen_ai.usage.output_tokens", .int(12)),
        ])
        let sibling = Build.span(4, parent: 1, start: 4, end: 5, attributes: [
            ("gen_ai.usage.input_tokens", .string("7")), ("gen_ai.usage.output_tokens", .int(3)),
            ("gen_ai.usage.cache_read.input_tokens", .int(2)),
        ])
        let derived = TraceDerivation.derive(spans: [root, agent, agentChild, sibling].map { Build.facts($0) },
                                             resources: [:], completeness: "closed")
        #expect(derived.tokenUsage == ["input_tokens": 37, "output_tokens": 15, "total_tokens": 52, "cache_read_input_tokens": 2])
    }

    @Test func noUsageMeansNoTokenColumns() {
        let derived = TraceDerivation.derive(spans: [Build.facts(Build.span(1, start: 1, end: 2))], resources: [:], completeness: "closed")
        #expect(derived.tokenUsage.isEmpty)
        #expect(derived.cost.isEmpty)
    }

    @Test func tagsComeFromTheRootResourceAndTheRootTraceTags() {
        let root = Build.span(1, start: 10, end: 100, attributes: [
            ("mlflow.traceTag.team", .string(#""search""#)), ("mlflow.traceTag.deployment.environment", .string("staging")),
            ("mlflow.traceTag.mlflow.traceName", .string(#""checkout""#)), ("mlflow.traceTag.bad key!", .string("x")),
            ("mlflow.traceTag.count", .int(3)),
        ])
        let child = Build.span(2, parent: 1, start: 5, end: 20, attributes: [("mlflow.traceTag.ignored", .string("child"))])
        let derived = TraceDerivation.derive(
            spans: [Build.facts(child, resourceID: 2), Build.facts(root, resourceID: 1)], resources: Self.resources,
            completeness: "closed")
        #expect(derived.tagDictionary == [
            "mlflow.trace.spansLocation": "TRACKING_STORE", "service.name": "svc-a",
            "deployment.environment": "staging", "team": "search", "count": "3",
            "stitch.completeness": "closed", "stitch.services": "svc-a,svc-b",
        ])
        #expect(derived.traceName == "checkout")
    }

    @Test func withoutRootTagsComeFromTheEarliestSpansResource() {
        let later = Build.span(2, parent: 1, start: 50, end: 60)
        let earliest = Build.span(3, parent: 1, start: 10, end: 20)
        let derived = TraceDerivation.derive(
            spans: [Build.facts(later, resourceID: 1), Build.facts(earliest, resourceID: 2)], resources: Self.resources,
            completeness: "timeout")
        #expect(derived.tagDictionary["service.name"] == "svc-b")
        #expect(derived.tagDictionary["team"] == "b")
    }

    @Test func oneServiceMeansNoServicesTag() {
        let root = Build.span(1, start: 10, end: 100)
        let derived = TraceDerivation.derive(spans: [Build.facts(root, resourceID: 1)], resources: Self.resources, completeness: "closed")
        #expect(derived.tagDictionary["stitch.services"] == nil)
    }

    @Test func completenessKeepsTheBestReason() {
        #expect(Completeness.merge(existing: "timeout", incoming: .closed) == "closed")
        #expect(Completeness.merge(existing: "closed", incoming: .late) == "closed")
        #expect(Completeness.merge(existing: "timeout", incoming: .late) == "timeout")
        #expect(Completeness.merge(existing: nil, incoming: .late) == "late")
        #expect(Completeness.merge(existing: "evicted", incoming: .timeout) == "timeout")
    }

    @Test func tagKeysAreValidatedLikeMLflow() {
        for key in ["service.name", "a/b", "with space", "x:y", "ünï", "AZaz09-_.", "٣Ω"] { #expect(TraceTagRules.isValidKey(key), "\(key)") }
        // ASCII neighbours of the allowed ranges ('@' '[' '`' '{'), a tab, and non-word Unicode.
        for key in ["", "/a", "a/", "a//b", "a/./b", "a/../b", "..a", ".", "bad!", String(repeating: "k", count: 251),
                    "a@b", "a[b", "a`b", "a{b", "a\tb", "a+b", "a→b"] {
            #expect(!TraceTagRules.isValidKey(key), "\(key)")
        }
        #expect(TraceTagRules.validated(key: "k", value: String(repeating: "v", count: 8001))?.value.count == 8000)
    }
}
