import Foundation
@testable import StitchCore
import Testing
import TraceModel

/// `stitch traces get`'s text view and the `/links` body for an agent trace and the MLflow AI
/// Gateway trace it called.
@Suite struct TraceRenderingTests {
    static let agentID = "tr-6374e17522eed09d146c0f661fd5d827"
    static let gatewayID = "tr-8453d5e6aa10c7100b7a7012fb30c5df"
    static let link = TraceLink(requestID: agentID, spanID: "2a7ead3f871d725a", linkedRequestID: gatewayID, endpointName: "chat")

    static func info(_ id: String, experiment: String) -> TraceInfoRecord {
        TraceInfoRecord(requestID: id, experimentID: experiment, timestampMs: 1_796_305_883_958, executionTimeMs: 12, status: "OK",
                        requestPreview: nil, responsePreview: nil, sessionID: nil, tags: ["stitch.completeness": "closed"], metadata: [:])
    }

    static func span(_ id: String, parent: String?, _ name: String, start: Int64, service: String) -> StoredSpan {
        StoredSpan(spanID: id, parentSpanID: parent, name: name, type: "LLM", status: "OK", startTimeUnixNano: start,
                   endTimeUnixNano: start + 1_000_000, serviceName: service, content: "{}")
    }

    static let agent = StoredTrace(info: info(agentID, experiment: "0"), spans: [
        span("00000000000000a1", parent: nil, "agent-root", start: 0, service: "agent"),
        span("00000000000000c3", parent: "2a7ead3f871d725a", "provider/openai/gpt-4o-mini", start: 10, service: "mlflow-gateway"),
        span("2a7ead3f871d725a", parent: "00000000000000a1", "gateway/chat", start: 20, service: "mlflow-gateway"),
    ], links: [link])

    static let gateway = StoredTrace(info: info(gatewayID, experiment: "1"), spans: [
        span("00000000000000b1", parent: nil, "gateway/chat", start: 5, service: "mlflow-gateway"),
        span("00000000000000b2", parent: "00000000000000b1", "provider/openai/gpt-4o-mini", start: 10, service: "mlflow-gateway"),
    ], links: [link])

    static func lines(_ text: String) -> [String] { text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }

    @Test func theAgentTraceNamesTheGatewayTraceOnItsCallingSpan() {
        let text = TraceRendering.tree(Self.agent)
        #expect(text.contains("calls:     \(Self.gatewayID)  (gateway endpoint chat, from span 2a7ead3f871d725a)"))
        let gatewayRow = try? #require(Self.lines(text).first { $0.hasPrefix("  gateway/chat") })
        #expect(gatewayRow?.hasSuffix("calls \(Self.gatewayID)") == true)
        #expect(!text.contains("»"), "linked spans are shown only when asked for")
    }

    @Test func linkedSpansAreShownUnderTheCallingSpanMarkedWithTheirTrace() throws {
        let text = TraceRendering.tree(Self.agent, linked: [Self.gatewayID: Self.gateway])
        let rows = Self.lines(text).filter { $0.hasPrefix(" ") || $0.hasPrefix("agent-root") }
        try #require(rows.count == 5)
        // The gateway span's own child first, then the gateway trace's spans one level below it.
        #expect(rows[1].hasPrefix("  gateway/chat "))
        #expect(rows[2].hasPrefix("    provider/openai/gpt-4o-mini "))
        #expect(rows[3].hasPrefix("    » gateway/chat "))
        #expect(rows[3].hasSuffix("in \(Self.gatewayID)"))
        #expect(rows[4].hasPrefix("      » provider/openai/gpt-4o-mini "))
        #expect(rows[4].hasSuffix("in \(Self.gatewayID)"))
    }

    @Test func aCalledTraceNotInTheStoreIsSaidToBeMissing() {
        let text = TraceRendering.tree(Self.agent, linked: [:])
        #expect(text.contains("    » (not in the store)"))
    }

    @Test func theGatewayTraceNamesItsCaller() {
        let text = TraceRendering.tree(Self.gateway)
        #expect(text.contains("called by: \(Self.agentID)  (gateway endpoint chat, span 2a7ead3f871d725a)"))
        #expect(!text.contains("LINK"), "a trace that calls nothing has no LINK column")
    }

    @Test func theLinksBodyListsBothDirections() throws {
        let agent = try JSONSerialization.jsonObject(with: Data(QueryRoutes.linksBody(Self.agent))) as? [String: Any]
        #expect(agent?["trace_id"] as? String == Self.agentID)
        let calls = agent?["calls"] as? [[String: String]]
        #expect(calls == [["trace_id": Self.gatewayID, "span_id": "2a7ead3f871d725a", "endpoint": "chat"]])
        #expect((agent?["called_by"] as? [Any])?.isEmpty == true)
        let gateway = try JSONSerialization.jsonObject(with: Data(QueryRoutes.linksBody(Self.gateway))) as? [String: Any]
        #expect(gateway?["called_by"] as? [[String: String]] == [["trace_id": Self.agentID, "span_id": "2a7ead3f871d725a", "endpoint": "chat"]])
    }
}
