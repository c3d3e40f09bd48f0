import Foundation
import OTLPWire
import TraceEdge

/// A trace store as the pipeline and the query API use it, whichever database holds it (SQLite,
/// PostgreSQL): written by `consume`, read by `searchTraces` and `storedTrace`.
package protocol TraceStore: TraceSink {
    /// Where the store is, for logs and errors; never carries a password.
    var location: String { get }
    /// Searches newest first; see `TraceQuery`. Throws `FilterError` for a filter that does not
    /// parse and `StoreError` for a bad page token or experiment id.
    func searchTraces(_ query: TraceQuery) async throws -> TraceSearchPage
    /// The trace with its spans ordered by start time, or nil when no such trace is stored.
    func storedTrace(id: String) async throws -> StoredTrace?
    /// Closes the store's connections once the writes already queued are done.
    func close() async throws
    /// Gives memory back when the pipeline is idle (caches, idle connections).
    func releaseMemory() async
    /// True while writes fail because the database cannot be reached (they are being retried).
    var isUnreachable: Bool { get }
}

extension TraceStore {
    /// An embedded file is always there.
    package var isUnreachable: Bool { false }
}

/// The `trace_info` columns a reader selects, in this order (`TraceInfoColumns.select`), and how
/// MLflow's `SqlTraceInfo.to_mlflow_entity` presents them: the trace name column appears as tag
/// `mlflow.traceName`, and the session, token usage and cost columns as metadata
/// `mlflow.trace.session`, `mlflow.trace.tokenUsage` and `mlflow.trace.cost`.
package struct TraceInfoColumns: Sendable {
    package static let select = """
        ti.request_id, ti.experiment_id, ti.timestamp_ms, ti.execution_time_ms, ti.status, ti.request_preview,
        ti.response_preview, ti.trace_name, ti.session_id, ti.input_tokens, ti.output_tokens, ti.total_tokens,
        ti.cache_read_input_tokens, ti.cache_creation_input_tokens, ti.cache_creation_input_tokens_above_1hr,
        ti.input_cost, ti.output_cost, ti.total_cost
        """

    package var requestID: String
    package var experimentID: Int64
    package var timestampMs: Int64
    package var executionTimeMs: Int64?
    package var status: String
    package var requestPreview: String?
    package var responsePreview: String?
    package var traceName: String?
    package var sessionID: String?
    /// By `TokenUsage.allKeys`.
    package var tokenUsage: [String: Int64]
    /// By `TraceCost.keys`.
    package var cost: [String: Double]

    package init(requestID: String, experimentID: Int64, timestampMs: Int64, executionTimeMs: Int64?, status: String,
                 requestPreview: String?, responsePreview: String?, traceName: String?, sessionID: String?,
                 tokenUsage: [String: Int64], cost: [String: Double]) {
        self.requestID = requestID
        self.experimentID = experimentID
        self.timestampMs = timestampMs
        self.executionTimeMs = executionTimeMs
        self.status = status
        self.requestPreview = requestPreview
        self.responsePreview = responsePreview
        self.traceName = traceName
        self.sessionID = sessionID
        self.tokenUsage = tokenUsage
        self.cost = cost
    }

    /// The record with the trace's `trace_tags` and `trace_request_metadata` rows.
    package func record(tags storedTags: [String: String], metadata storedMetadata: [String: String]) -> TraceInfoRecord {
        var tags = storedTags
        if let traceName { tags[MLflowKeys.traceName] = traceName }
        var metadata = storedMetadata.filter { !TraceMetadataKeys.promoted.contains($0.key) }
        if let sessionID { metadata[TraceMetadataKeys.session] = sessionID }
        var usage = PyObject()
        for key in TokenUsage.allKeys { if let count = tokenUsage[key] { usage[key] = .int(count) } }
        if !usage.isEmpty { metadata[TraceMetadataKeys.tokenUsage] = PyJSONWriter.dump(.object(usage), ensureASCII: true) }
        var costs = PyObject()
        for key in TraceCost.keys { if let amount = cost[key] { costs[key] = .double(amount) } }
        if !costs.isEmpty { metadata[TraceMetadataKeys.cost] = PyJSONWriter.dump(.object(costs), ensureASCII: true) }
        return TraceInfoRecord(
            requestID: requestID, experimentID: String(experimentID), timestampMs: timestampMs,
            executionTimeMs: executionTimeMs, status: status, requestPreview: requestPreview,
            responsePreview: responsePreview, sessionID: sessionID, tags: tags, metadata: metadata)
    }
}

/// The opaque continuation of a search: the (timestamp_ms, request_id) of the last trace returned,
/// bound to the query it came from. The same token reads the same page on either backend.
package enum PageToken {
    package struct Position: Equatable {
        package var timestampMs: Int64
        package var requestID: String
    }

    package static func encode(timestampMs: Int64, requestID: String, fingerprint: String) -> String {
        let text = "v1:\(fingerprint):\(timestampMs):\(requestID)"
        return Data(text.utf8).base64EncodedString()
    }

    package static func decode(_ token: String, fingerprint: String) throws -> Position {
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8) else {
            throw StoreError("invalid page token: not one this store issued")
        }
        let parts = text.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "v1", let timestamp = Int64(parts[2]), !parts[3].isEmpty else {
            throw StoreError("invalid page token: not one this store issued")
        }
        guard parts[1] == fingerprint else {
            throw StoreError("invalid page token: it belongs to a search with other experiments or another filter")
        }
        return Position(timestampMs: timestamp, requestID: String(parts[3]))
    }

    /// FNV-1a of the query's experiments and filter, so that a token is not used with another query.
    package static func fingerprint(experimentIDs: [Int64], filter: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in Array((experimentIDs.map(String.init).joined(separator: ",") + "|" + filter).utf8) {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

extension TraceQuery {
    /// The experiment ids as integers (MLflow's are).
    package func numericExperimentIDs() throws -> [Int64] {
        try experimentIDs.map { id in
            guard let number = Int64(id) else { throw StoreError("experiment ids are integers, got '\(id)'") }
            return number
        }
    }

    /// The page size actually served: 1…`maximum`.
    package func clampedLimit(maximum: Int) -> Int { min(max(maxResults, 1), maximum) }
}

extension SpanFacts {
    /// Attribute keys whose presence in a stored span's content means the merge needs its
    /// attributes (the root's are always needed): a reader fetches the content of those spans only.
    package static let contentKeysForMerge = [
        MLflowKeys.tokenUsage, MLflowKeys.cost, MLflowKeys.sessionID, MLflowKeys.conversationID, MLflowKeys.userID,
    ]

    /// The facts of a stored `spans` row; `content` nil when the reader did not fetch it. Nil for
    /// a row whose span id is not 16 hex digits.
    package init?(storedSpanID: String, parentSpanID parentHex: String?, startTimeUnixNano: Int64,
                  endTimeUnixNano: Int64?, status: String, resourceID: Int64?, content: String?) {
        guard let spanID = SpanID(hex: storedSpanID) else { return nil }
        var attributes = PyObject()
        if let content, let object = PyJSONParser.parse(content)?.objectValue,
           let stored = object["attributes"]?.objectValue {
            attributes = stored
        }
        self.init(spanID: spanID, parentSpanID: parentHex.flatMap { SpanID(hex: $0) } ?? .none,
                  startTimeUnixNano: startTimeUnixNano, endTimeUnixNano: endTimeUnixNano ?? 0,
                  status: status, resourceID: resourceID, attributes: attributes)
    }
}

/// One page of a search as SQL over `trace_info ti` (newest first, keyset after the page token),
/// the same on either backend: `?` placeholders in `sql`, bound in order from `arguments`.
package struct TraceSearchStatement: Sendable {
    package var sql: String
    package var arguments: [TraceFilter.Argument]
    /// Rows per page; the statement selects one more to tell whether a next page exists.
    package var limit: Int
    package var fingerprint: String

    package static let maximumResults = 1000

    package init(_ query: TraceQuery) throws {
        let filter = try TraceFilter.parse(query.filter ?? "")
        var clauses = filter.clauses
        arguments = filter.arguments
        let experimentIDs = try query.numericExperimentIDs()
        if !experimentIDs.isEmpty {
            clauses.insert("ti.experiment_id IN (\(Array(repeating: "?", count: experimentIDs.count).joined(separator: ", ")))", at: 0)
            arguments.insert(contentsOf: experimentIDs.map { .integer($0) }, at: 0)
        }
        fingerprint = PageToken.fingerprint(experimentIDs: experimentIDs, filter: query.filter ?? "")
        if let token = query.pageToken {
            let position = try PageToken.decode(token, fingerprint: fingerprint)
            clauses.append("(ti.timestamp_ms, ti.request_id) < (?, ?)")
            arguments += [.integer(position.timestampMs), .string(position.requestID)]
        }
        limit = query.clampedLimit(maximum: Self.maximumResults)
        sql = """
            SELECT \(TraceInfoColumns.select) FROM trace_info ti
            \(clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND "))
            ORDER BY ti.timestamp_ms DESC, ti.request_id DESC
            LIMIT \(limit + 1)
            """
    }

    /// The page of the first `limit` rows the statement returned, in their order; `hasMore` when
    /// it returned more than `limit` rows.
    package func page(_ traces: [TraceInfoRecord], hasMore: Bool) -> TraceSearchPage {
        guard hasMore, let last = traces.last else { return TraceSearchPage(traces: traces, nextPageToken: nil) }
        return TraceSearchPage(traces: traces, nextPageToken: PageToken.encode(
            timestampMs: last.timestampMs, requestID: last.requestID, fingerprint: fingerprint))
    }
}

/// A store batch converted to MLflow's rows, off the database's thread, with what it could not
/// convert (for the store's log).
package struct PreparedBatch: Sendable {
    package struct Problem: Sendable {
        /// Spans were left out (an error); otherwise the trace went to the default experiment.
        package var spansLeftOut: Bool
        package var message: String
        package var metadata: [String: String]
    }

    package var traces: [PreparedTrace] = []
    package var problems: [Problem] = []

    /// - Parameters:
    ///   - kindInContent: false for MLflow before 3.18 (`MLflowSchema.kindInContent`).
    ///   - experiment: the experiment each trace goes to, nil for the default (by default the one
    ///     its requests named).
    package init(_ finished: [FinishedTrace], kindInContent: Bool = true,
                 experiment: (FinishedTrace) -> String? = { $0.experimentID }) {
        traces.reserveCapacity(finished.count)
        var context = PreparedTrace.PreparationContext(kindInContent: kindInContent)
        for trace in finished {
            var experimentID: Int64?
            if let named = experiment(trace), !named.isEmpty {
                experimentID = Int64(named)
                if experimentID == nil {
                    problems.append(Problem(spansLeftOut: false,
                                            message: "experiment id is not an integer; the trace goes to the default experiment",
                                            metadata: ["trace.id": trace.traceID.hex, "experiment.id": named]))
                }
            }
            let (prepared, failures) = PreparedTrace.prepare(trace, experimentID: experimentID, context: &context)
            if !failures.isEmpty {
                problems.append(Problem(spansLeftOut: true, message: "spans left out of a stored trace: they do not decode", metadata: [
                    "trace.id": trace.traceID.hex, "failures": failures.prefix(3).joined(separator: "; "), "count": "\(failures.count)",
                ]))
            }
            if let prepared { traces.append(prepared) }
        }
    }

    /// The same batch, its two halves prepared at once (on two cores the conversion takes half the
    /// time), in the order of `finished`.
    package static func inParallel(_ finished: [FinishedTrace], kindInContent: Bool = true,
                                   experiment: @escaping @Sendable (FinishedTrace) -> String? = { $0.experimentID }) async -> PreparedBatch {
        guard finished.count >= 2 * minimumShare else {
            return PreparedBatch(finished, kindInContent: kindInContent, experiment: experiment)
        }
        let middle = finished.count / 2
        let firstHalf = Array(finished[..<middle])
        async let first = PreparedBatch(firstHalf, kindInContent: kindInContent, experiment: experiment)
        var batch = PreparedBatch(Array(finished[middle...]), kindInContent: kindInContent, experiment: experiment)
        let done = await first
        batch.traces = done.traces + batch.traces
        batch.problems = done.problems + batch.problems
        return batch
    }

    /// Below twice this many traces a batch is prepared on one task.
    static let minimumShare = 32
}
