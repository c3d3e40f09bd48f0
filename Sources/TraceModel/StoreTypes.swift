import Foundation

/// A store that cannot be opened, read or written, with what to do about it.
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

/// A search over stored traces, newest first.
public struct TraceQuery: Sendable {
    /// Empty: every experiment.
    public var experimentIDs: [String]
    /// MLflow's search syntax, e.g. `tag.\`service.name\` = 'checkout' AND status = 'ERROR'`
    /// (the supported forms are listed on `SQLiteTraceStore.search`).
    public var filter: String?
    /// Page size, clamped to 1…1000.
    public var maxResults: Int
    /// `nextPageToken` of the previous page of the same query.
    public var pageToken: String?
    public init(experimentIDs: [String] = [], filter: String? = nil, maxResults: Int = 100, pageToken: String? = nil) {
        self.experimentIDs = experimentIDs
        self.filter = filter
        self.maxResults = maxResults
        self.pageToken = pageToken
    }
}

/// One `trace_info` row with its tags and request metadata, as MLflow presents it: the trace
/// name column appears as tag `mlflow.traceName`, and the session, token usage and cost columns as
/// metadata `mlflow.trace.session`, `mlflow.trace.tokenUsage` and `mlflow.trace.cost`.
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

/// A stored trace: its info and every span.
public struct StoredTrace: Sendable {
    public var info: TraceInfoRecord
    /// Ordered by start time.
    public var spans: [StoredSpan]
    public init(info: TraceInfoRecord, spans: [StoredSpan]) {
        self.info = info
        self.spans = spans
    }
}

/// One page of search results.
public struct TraceSearchPage: Sendable {
    public var traces: [TraceInfoRecord]
    public var nextPageToken: String?
    public init(traces: [TraceInfoRecord], nextPageToken: String?) {
        self.traces = traces
        self.nextPageToken = nextPageToken
    }
}
