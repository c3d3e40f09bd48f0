// CONTRACT STUBS — replaced by the real implementation (TraceStore helper). Signatures are the contract.
import Foundation
import Logging
import Metrics
import OTLPWire
import TraceAssembler

public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A filter string that does not parse; `position` is the offending token's offset in the string.
public struct FilterError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var position: Int
    public init(message: String, position: Int) {
        self.message = message
        self.position = position
    }
    public var description: String { message }
}

public struct TraceQuery: Sendable {
    /// Empty: every experiment.
    public var experimentIDs: [String]
    public var filter: String?
    public var maxResults: Int
    public var pageToken: String?
    public init(experimentIDs: [String] = [], filter: String? = nil, maxResults: Int = 100, pageToken: String? = nil) {
        self.experimentIDs = experimentIDs
        self.filter = filter
        self.maxResults = maxResults
        self.pageToken = pageToken
    }
}

/// One `trace_info` row with its tags and request metadata.
public struct TraceInfoRecord: Sendable {
    public var requestID: String
    public var experimentID: String
    public var timestampMs: Int64
    public var executionTimeMs: Int64?
    public var status: String
    public var requestPreview: String?
    public var responsePreview: String?
    public var sessionID: String?
    public var tags: [String: String]
    public var metadata: [String: String]
    public init(requestID: String, experimentID: String, timestampMs: Int64, executionTimeMs: Int64?, status: String,
                requestPreview: String?, responsePreview: String?, sessionID: String?, tags: [String: String], metadata: [String: String]) {
        self.requestID = requestID
        self.experimentID = experimentID
        self.timestampMs = timestampMs
        self.executionTimeMs = executionTimeMs
        self.status = status
        self.requestPreview = requestPreview
        self.responsePreview = responsePreview
        self.sessionID = sessionID
        self.tags = tags
        self.metadata = metadata
    }
    /// MLflow's TraceInfo JSON object (as in `Trace.to_json()["info"]`), serialized.
    public func mlflowJSON() -> Data { Data() }
}

/// One `spans` row plus the service that sent it.
public struct StoredSpan: Sendable {
    public var spanID: String
    public var parentSpanID: String?
    public var name: String
    public var type: String?
    public var status: String
    public var startTimeUnixNano: Int64
    public var endTimeUnixNano: Int64
    public var serviceName: String?
    /// The span's MLflow JSON (`spans.content`).
    public var content: String
    public init(spanID: String, parentSpanID: String?, name: String, type: String?, status: String,
                startTimeUnixNano: Int64, endTimeUnixNano: Int64, serviceName: String?, content: String) {
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.name = name
        self.type = type
        self.status = status
        self.startTimeUnixNano = startTimeUnixNano
        self.endTimeUnixNano = endTimeUnixNano
        self.serviceName = serviceName
        self.content = content
    }
}

public struct StoredTrace: Sendable {
    public var info: TraceInfoRecord
    /// Ordered by start time.
    public var spans: [StoredSpan]
    public init(info: TraceInfoRecord, spans: [StoredSpan]) {
        self.info = info
        self.spans = spans
    }
    /// MLflow's Trace JSON (`{"info": …, "data": {"spans": […]}}`), loadable by `Trace.from_json`.
    public func mlflowJSON() -> Data { Data() }
}

public struct TraceSearchPage: Sendable {
    public var traces: [TraceInfoRecord]
    public var nextPageToken: String?
    public init(traces: [TraceInfoRecord], nextPageToken: String?) {
        self.traces = traces
        self.nextPageToken = nextPageToken
    }
    /// `{"traces": [TraceInfo JSON…], "next_page_token": …}`.
    public func mlflowJSON() -> Data { Data() }
}

/// The embedded store, laid out like MLflow's trace tables (SQLite, WAL).
public final class SQLiteTraceStore: TraceSink {
    /// Opens (creating directories, schema and experiment `0` "Default" as needed).
    /// `readOnly` opens for queries while another process writes.
    public init(path: String, defaultExperimentID: String = "0", readOnly: Bool = false,
                logger: Logger = Logger(label: "stitch.store"), metrics: any MetricsFactory = MetricsSystem.factory) throws {}

    /// Writes many finished traces in one transaction (new traces inserted, late fragments merged).
    /// Runs on GRDB's writer queue, never on the caller's event loop.
    public func consume(_ traces: [FinishedTrace]) async throws {}

    public func search(_ query: TraceQuery) throws -> TraceSearchPage { TraceSearchPage(traces: [], nextPageToken: nil) }

    /// `id` is `tr-<32 hex>`.
    public func trace(id: String) throws -> StoredTrace? { nil }
}
