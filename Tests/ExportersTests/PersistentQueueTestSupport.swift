import Foundation
import Logging
import Metrics
import OTLPWire
import StitchTestSupport
import Synchronization
import Testing
import TraceEdge
@testable import Exporters

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct QueueTestDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "stitch-queue-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    /// File names in `subdirectory` (or the directory itself), sorted.
    func files(_ subdirectory: String? = nil) throws -> [String] {
        let directory = subdirectory.map { path + "/" + $0 } ?? path
        return try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    func segmentFiles() throws -> [String] { try files().filter { $0.hasSuffix(".stq") } }

    func size(_ name: String) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: path + "/" + name)[.size] as! Int
    }
}

/// A settable wall clock in milliseconds.
final class QueueTestClock: Sendable {
    private let value: Mutex<Int64>
    init(_ start: Int64) { value = Mutex(start) }
    var ms: Int64 {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
    var now: @Sendable () -> Int64 { { self.ms } }
}


/// Finished traces built from the captured requests.
enum QueueTestTraces {
    static let logger = Logger(label: "stitch.queue.test")

    static func decode(_ fixture: String, experimentID: String? = nil) throws -> DecodedBatch {
        try OTLPTraceDecoder.decode(Fixtures.bytes(fixture), experimentID: experimentID)
    }

    /// The trace of fixtures 01 (service-a, 3 spans) and 02 (service-b, 2 spans): one trace whose spans
    /// come from two requests with different resources.
    static func stitched() throws -> FinishedTrace {
        let a = try decode("01", experimentID: "1")
        let b = try decode("02")
        let spans = a.spans + b.spans
        return FinishedTrace(traceID: spans[0].traceID, spans: spans, reason: .closed, isComplete: true, experimentID: "1")
    }

    /// The one-span MLflow trace of fixture 04, released incomplete.
    static func mlflow() throws -> FinishedTrace {
        let batch = try decode("04")
        return FinishedTrace(
            traceID: batch.spans[0].traceID, spans: batch.spans, reason: .timeout, isComplete: false, experimentID: nil)
    }

    /// `count` traces distinguished by their trace id (low half = 1, 2, …), each with fixture 01's spans.
    static func numbered(_ count: Int, from first: UInt64 = 1) throws -> [FinishedTrace] {
        let spans = try decode("01").spans
        return (0..<UInt64(count)).map {
            FinishedTrace(traceID: TraceID(high: 0, low: first + $0), spans: spans, reason: .closed,
                          isComplete: true, experimentID: nil)
        }
    }

    /// The encoded bytes of each span and the encoded resource of each span, for comparing traces.
    static func spanBytes(_ trace: FinishedTrace) -> [[UInt8]] {
        trace.spans.map { Array($0.payload.bytes[$0.spanBytes]) }
    }

    static func resourceBytes(_ trace: FinishedTrace) -> [[UInt8]] {
        trace.spans.map { Array($0.payload.bytes[$0.resource.resourceBytes]) }
    }
}

extension PersistentQueue {
    /// A queue over `directory` with a test clock and metrics.
    static func forTest(
        _ directory: QueueTestDirectory, maxBytes: Int = 1 << 30, segmentBytes: Int = 8 << 20,
        fsync: FsyncPolicy = .batch, clock: QueueTestClock = QueueTestClock(1_000), metrics: RecordingMetrics = RecordingMetrics()
    ) throws -> PersistentQueue {
        try PersistentQueue(
            name: "test", configuration: PersistentQueueConfiguration(
                directory: directory.path, maxBytes: maxBytes, segmentBytes: segmentBytes, fsync: fsync),
            logger: QueueTestTraces.logger, metrics: metrics, now: clock.now)
    }

    /// Returns once a reader is suspended in `next` (yields, never sleeps).
    func untilAReaderWaits() async {
        while waitingReaders == 0 { await Task.yield() }
    }

    /// The next batch; empty instead of waiting when nothing is unread.
    func take(_ maxTraces: Int = 1000, maxBytes: Int = 1 << 30) async throws -> [QueuedTrace] {
        guard unreadTraces > 0 else { return [] }
        return try #require(await next(maxTraces: maxTraces, maxBytes: maxBytes))
    }
}
