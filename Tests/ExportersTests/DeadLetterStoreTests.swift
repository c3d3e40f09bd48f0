import Foundation
import OTLPWire
import StitchTestSupport
import Testing
import TraceEdge
@testable import Exporters

@Suite("DeadLetterStore")
struct DeadLetterStoreTests {
    private func makeStore(
        _ directory: QueueTestDirectory, maxBytes: Int = 256 << 20, maxResponseBytes: Int = 4096,
        clock: QueueTestClock = QueueTestClock(1_700_000_000_000), metrics: RecordingMetrics = RecordingMetrics()
    ) throws -> DeadLetterStore {
        try DeadLetterStore(
            destination: "jaeger",
            configuration: DeadLetterConfiguration(
                directory: directory.path + "/dead-letters", maxBytes: maxBytes, maxResponseBytes: maxResponseBytes),
            logger: QueueTestTraces.logger, metrics: metrics, now: clock.now)
    }

    @Test func entriesReadBackAndTheirRequestDecodesToTheSameSpans() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory)
        let stitched = try QueueTestTraces.stitched()
        let mlflow = try QueueTestTraces.mlflow()
        let response = #"{"code":3,"message":"invalid span"}"#
        let stored = try #require(try await store.append(traces: [stitched, mlflow], reason: "HTTP 400 Bad Request", response: response))

        let entries = try await store.entries()
        #expect(entries == [stored])
        let entry = try #require(entries.first)
        #expect(entry.destination == "jaeger")
        #expect(entry.reason == "HTTP 400 Bad Request")
        #expect(entry.response == response)
        #expect(!entry.responseTruncated)
        #expect(entry.timeMs == 1_700_000_000_000)
        #expect(entry.time == "2023-11-14T22:13:20.000Z")
        #expect(entry.traceIDs == [stitched.traceID.hex, mlflow.traceID.hex])
        #expect(entry.spanCount == 6)

        let request = try await store.request(of: entry)
        #expect(request.count == entry.requestBytes)
        let decoded = try OTLPTraceDecoder.decode(request, experimentID: nil)
        let original = stitched.spans + mlflow.spans
        #expect(decoded.spans.map(\.spanID) == original.map(\.spanID))
        #expect(decoded.spans.map { Array($0.payload.bytes[$0.spanBytes]) } == original.map { Array($0.payload.bytes[$0.spanBytes]) })
        #expect(decoded.spans.map(\.serviceName) == original.map(\.serviceName))
        // The files an operator replays from.
        #expect(try directory.files("dead-letters") == ["00000000000000000001.json", "00000000000000000001.pb"])
    }

    @Test func storeIsBoundedOldestEntriesRotateOutAndAreCounted() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let metrics = RecordingMetrics()
        let traces = try QueueTestTraces.numbered(1)
        // Measure one entry with an unbounded store, then allow room for two and a half.
        let probeDirectory = try QueueTestDirectory()
        defer { probeDirectory.remove() }
        let probe = try makeStore(probeDirectory)
        _ = try await probe.append(traces: traces, reason: "HTTP 400", response: "no")
        let entrySize = probe.storedBytes
        let store = try makeStore(directory, maxBytes: entrySize * 5 / 2, metrics: metrics)
        for index in 0..<4 {
            try await store.append(traces: traces, reason: "HTTP 400", response: "no \(index)")
        }
        let entries = try await store.entries()
        #expect(entries.map(\.response) == ["no 2", "no 3"])
        #expect(entries.map(\.id) == [3, 4])
        #expect(store.storedBytes <= entrySize * 5 / 2)
        #expect(metrics["stitch_dead_letters_dropped_total{destination=jaeger,reason=rotated}"] == 2)
        #expect(metrics["stitch_dead_letter_entries{destination=jaeger}"] == 2)
        #expect(try directory.files("dead-letters").count == 4)
    }

    @Test func entryLargerThanTheWholeStoreIsNotKeptAndIsCounted() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let metrics = RecordingMetrics()
        let store = try makeStore(directory, maxBytes: 100, metrics: metrics)
        #expect(try await store.append(traces: QueueTestTraces.numbered(1), reason: "HTTP 413", response: "") == nil)
        #expect(try await store.entries().isEmpty)
        #expect(metrics["stitch_dead_letters_dropped_total{destination=jaeger,reason=too_large}"] == 1)
    }

    @Test func responseIsCutOnACharacterBoundary() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let store = try makeStore(directory, maxResponseBytes: 6)
        // "ab" + "é" (2 bytes) + "€" (3 bytes): 7 bytes; 6 would cut the euro sign.
        let entry = try #require(try await store.append(traces: QueueTestTraces.numbered(1), reason: "HTTP 400", response: "abé€"))
        #expect(entry.response == "abé")
        #expect(entry.responseTruncated)
        #expect(try await store.entries().first?.response == "abé")
    }

    @Test func reopeningFindsEntriesContinuesIdsAndRemovesOrphans() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let traces = try QueueTestTraces.numbered(1)
        do {
            let store = try makeStore(directory)
            try await store.append(traces: traces, reason: "HTTP 400", response: "first")
        }
        // A crash after the request file of entry 2, before its metadata.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: directory.path + "/dead-letters/00000000000000000002.pb"))
        let reopened = try makeStore(directory)
        #expect(try directory.files("dead-letters") == ["00000000000000000001.json", "00000000000000000001.pb"])
        let second = try #require(try await reopened.append(traces: traces, reason: "HTTP 404", response: "second"))
        #expect(second.id == 2)
        #expect(try await reopened.entries().map(\.response) == ["first", "second"])
    }
}
