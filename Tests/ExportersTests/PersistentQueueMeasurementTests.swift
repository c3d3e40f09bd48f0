import Foundation
import OTLPWire
import Testing
import TraceEdge
@testable import Exporters

/// Disk cost and speed of the queue, printed to the test log (run with `-c release` for real numbers).
@Suite("PersistentQueue measurements", .serialized)
struct PersistentQueueMeasurementTests {
    @Test func bytesPerSpanOnDisk() async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory)
        let trace = try QueueTestTraces.stitched()
        try await queue.append([trace])
        let record = try directory.size(try #require(try directory.segmentFiles().first)) - 8
        let request = OTLPTraceEncoder.encodeRequest(trace.spans).count
        // Format: frame 8 + fixed header 34 + reason (1 + "closed") + experiment (4 + "1").
        #expect(record - request == 8 + 34 + 1 + 6 + 4 + 1)
        print("""
            queue disk cost: fixture trace 01+02 (\(trace.spans.count) spans): record \(record) B, \
            OTLP request \(request) B, \(record / trace.spans.count) B/span, header overhead \(record - request) B/trace
            """)
        await queue.close()
    }

    @Test(arguments: FsyncPolicy.allCases) func appendThroughput(_ policy: FsyncPolicy) async throws {
        let directory = try QueueTestDirectory()
        defer { directory.remove() }
        let queue = try PersistentQueue.forTest(directory, fsync: policy)
        let traces = try QueueTestTraces.numbered(64)
        let recordBytes = QueueRecord.Prepared(traces[0]).recordSize
        let batches = 100
        let clock = ContinuousClock()
        let appending = await clock.measure {
            for _ in 0..<batches { try! await queue.append(traces) }
        }
        let total = batches * traces.count
        #expect(queue.stats.queuedTraces == total)
        var read = 0
        let reading = try await clock.measure {
            while read < total {
                let batch = try await queue.take(512)
                read += batch.count
                try await queue.acknowledge(through: batch.last!.sequence)
            }
        }
        #expect(queue.stats == QueueStats())
        func rate(_ duration: Duration) -> String {
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            let traces = Double(total) / seconds
            return "\(Int(traces)) traces/s, \(String(format: "%.1f", traces * Double(recordBytes) / 1e6)) MB/s"
        }
        print("""
            queue throughput, fsync \(policy.rawValue): \(total) traces of \(recordBytes) B in batches of \(traces.count): \
            append \(rate(appending)); read+ack in batches of 512: \(rate(reading))
            """)
        await queue.close()
    }
}
