import Foundation

/// A store that cannot be opened, read or written, with what to do about it.
package struct StoreError: Error, Sendable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// A filter string that does not parse; `position` is the offending token's offset in the string.
package struct FilterError: Error, Sendable, CustomStringConvertible {
    package var message: String
    package var position: Int
    package init(message: String, position: Int) {
        self.message = message
        self.position = position
    }
    package var description: String { message }
}

/// A search over stored traces, newest first.
package struct TraceQuery: Sendable {
    /// Empty: every experiment.
    package var experimentIDs: [String]
    /// MLflow's search syntax, e.g. `tag.\`service.name\` = 'checkout' AND status = 'ERROR'`
    /// (the supported forms are listed on `SQLiteTraceStore.search`).
    package var filter: String?
    /// Page size, clamped to 1…1000.
    package var maxResults: Int
    /// `nextPageToken` of the previous page of the same query.
    package var pageToken: String?
    package init(experimentIDs: [String] = [], filter: String? = nil, maxResults: Int = 100, pageToken: String? = nil) {
        self.experimentIDs = experimentIDs
        self.filter = filter
        self.maxResults = maxResults
        self.pageToken = pageToken
    }
}

/// One `trace_info` row with its tags and request metadata, as MLflow presents it: the trace
/// name column appears as tag `mlflow.traceName`, and the session, token usage and cost columns as
/// metadata `mlflow.trace.session`, `mlflow.trace.tokenUsage` and `mlflow.trace.cost`.
package struct TraceInfoRecord: Sendable {
    package var requestID: String
    package var experimentID: String
    package var timestampMs: Int64
    package var executionTimeMs: Int64?
    package var status: String
    package var requestPreview: String?
    package var responsePreview: String?
    package var sessionID: String?
    package var tags: [String: String]
    package var metadata: [String: String]
    package init(requestID: String, experimentID: String, timestampMs: Int64, executionTimeMs: Int64?, status: String,
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
package struct StoredSpan: Sendable {
    package var spanID: String
    package var parentSpanID: String?
    package var name: String
    package var type: String?
    package var status: String
    package var startTimeUnixNano: Int64
    package var endTimeUnixNano: Int64
    package var serviceName: String?
    /// The span's MLflow JSON (`spans.content`).
    package var content: String
    package init(spanID: String, parentSpanID: String?, name: String, type: String?, status: String,
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
package struct StoredTrace: Sendable {
    package var info: TraceInfoRecord
    /// Ordered by start time.
    package var spans: [StoredSpan]
    /// Its rows of `stitch_trace_links`, both ways (`calls`, `calledBy`).
    package var links: [TraceLink]
    package init(info: TraceInfoRecord, spans: [StoredSpan], links: [TraceLink] = []) {
        self.info = info
        self.spans = spans
        self.links = links
    }
}

/// One page of search results.
package struct TraceSearchPage: Sendable {
    package var traces: [TraceInfoRecord]
    package var nextPageToken: String?
    package init(traces: [TraceInfoRecord], nextPageToken: String?) {
        self.traces = traces
        self.nextPageToken = nextPageToken
    }
}
