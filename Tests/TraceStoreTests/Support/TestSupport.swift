import CoreMetrics
import Foundation
import OTLPWire
import StitchTestSupport
import Synchronization
import TraceAssembler
import TraceEdge
@testable import SQLiteStore
@testable import TraceModel

/// The captured MLflow/OTel requests (`Tests/Fixtures/mlflow-otlp`, located and checked by
/// StitchTestSupport).
enum Fixtures {
    static var directory: URL { StitchTestSupport.Fixtures.directory }

    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(name))
    }

    static func batch(_ name: String, experimentID: String? = nil) throws -> DecodedBatch {
        try OTLPTraceDecoder.decode(Array(data(name)), experimentID: experimentID)
    }

    static let serviceA = "01-otelsdk-serviceA-3spans.pb"
    static let serviceB = "02-otelsdk-serviceB-2spans-remote-parent.pb"
    static let mlflowClientRoot = "04-mlflow-otlpexport-client-root.pb"
    static let mlflowRemoteServer = "05-mlflow-otlpexport-remote-server-2spans.pb"
    static let storedRows = "13-stored-trace-from-fixture-03.sql-rows.json"
    static let storedJSON = "13-stored-trace-from-fixture-03.to_json.json"
}

/// A directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("stitch-store-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    var storePath: String { url.appendingPathComponent("store/stitch.db").path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Hand-built spans for tests that do not need the wire decoder.
enum Build {
    static let traceID = TraceID(high: 0x0123_4567_89ab_cdef, low: 0x0011_2233_4455_6677)

    static func span(_ id: UInt64, parent: UInt64 = 0, trace: TraceID = traceID, name: String? = nil,
                     start: UInt64, end: UInt64, status: Int32 = 0, kind: Int32 = 1,
                     attributes: [(String, AnyValue)] = []) -> SpanDetail {
        SpanDetail(traceID: trace, spanID: SpanID(raw: id), parentSpanID: SpanID(raw: parent), name: name ?? "span-\(id)",
                   kind: kind, startTimeUnixNano: start, endTimeUnixNano: end,
                   attributes: attributes.map { KeyValue(key: $0.0, value: $0.1) }, statusCode: status)
    }

    static func resource(_ attributes: [(String, String)]) -> ResourceDetail {
        ResourceDetail(attributes: attributes.map { KeyValue(key: $0.0, value: .string($0.1)) })
    }

    static func trace(_ spans: [(SpanDetail, ResourceDetail?)], reason: ReleaseReason = .closed,
                      experimentID: Int64? = nil, trace: TraceID = traceID) -> PreparedTrace {
        PreparedTrace(traceID: trace, experimentID: experimentID, reason: reason,
                      spans: spans.map { (span: $0.0, resource: $0.1) })
    }

    static func facts(_ detail: SpanDetail, resourceID: Int64? = nil) -> SpanFacts {
        SpanFacts(span: MLflowSpan(detail: detail, resource: nil), resourceID: resourceID)
    }
}

/// A metrics factory that keeps every value it is given, for assertions.
final class RecordingMetrics: MetricsFactory {
    private let values = Mutex<[String: [Int64]]>([:])

    func values(_ label: String) -> [Int64] { values.withLock { $0[label] ?? [] } }
    func total(_ label: String) -> Int64 { values(label).reduce(0, +) }

    fileprivate func record(_ label: String, _ value: Int64) {
        values.withLock { $0[label, default: []].append(value) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { Handler(label: label, owner: self) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(label: label, owner: self)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Handler(label: label, owner: self) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    private final class Handler: CounterHandler, RecorderHandler, TimerHandler {
        let label: String
        let owner: RecordingMetrics
        init(label: String, owner: RecordingMetrics) {
            self.label = label
            self.owner = owner
        }
        func increment(by amount: Int64) { owner.record(label, amount) }
        func reset() {}
        func record(_ value: Int64) { owner.record(label, value) }
        func record(_ value: Double) { owner.record(label, Int64(value)) }
        func recordNanoseconds(_ duration: Int64) { owner.record(label, duration) }
    }
}
