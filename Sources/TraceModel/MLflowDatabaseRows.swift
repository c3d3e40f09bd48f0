import OTLPWire

/// A schema revision of MLflow's database that the `mlflow_database` destination writes into, and
/// how the MLflow releases at that revision write span rows (docs/mlflow-database.md).
package struct MLflowSchema: Sendable, Equatable {
    /// `alembic_version.version_num`.
    package let revision: String
    package let mlflowVersions: [String]
    /// MLflow 3.18 writes `"kind": "SPAN_KIND_…"` in `spans.content`; 3.17 does not.
    package let kindInContent: Bool

    /// Newest first. The trace tables are the same at both revisions.
    package static let supported = [
        MLflowSchema(revision: "f4a9b2c7d1e6", mlflowVersions: ["3.18.0"], kindInContent: true),
        MLflowSchema(revision: "dc11669786a5", mlflowVersions: ["3.17.0", "3.17.1", "3.17.2"], kindInContent: false),
    ]

    /// Every supported MLflow version, for messages.
    package static var supportedVersions: String {
        supported.reversed().flatMap(\.mlflowVersions).joined(separator: ", ")
    }

    /// The schema a database's `alembic_version` names, or why Stitch will not write into it.
    /// - Parameter revision: nil when the table has no row.
    package static func check(revision: String?, database: String) throws(StoreError) -> MLflowSchema {
        guard let revision else {
            throw StoreError("\(database) has an empty alembic_version table: it is not a database MLflow finished creating")
        }
        guard let schema = supported.first(where: { $0.revision == revision }) else {
            throw StoreError("""
                \(database) is at MLflow schema revision \(revision), which Stitch does not know; it writes into the \
                revisions of MLflow \(supportedVersions) (\(supported.map(\.revision).joined(separator: ", "))). \
                Stitch never migrates MLflow's schema: use a supported MLflow release, or a Stitch that knows this revision
                """)
        }
        return schema
    }

    /// A database without `alembic_version`.
    package static func notMLflow(_ database: String) -> StoreError {
        StoreError("""
            \(database) has no alembic_version table: it is not an MLflow database. Create it with \
            `mlflow db upgrade <uri>` (or start `mlflow server --backend-store-uri <uri>` once); Stitch never creates MLflow's schema
            """)
    }

    /// The tables the destination writes or reads.
    package static let tables = ["experiments", "trace_info", "trace_tags", "trace_request_metadata", "spans"]
}

/// MLflow's `spans` columns: Stitch's store's, less its resource column.
package enum MLflowSpanColumns {
    package static let names = StoreTables.spanColumns.filter { $0 != "stitch_resource_id" }
    package static let upsert = "ON CONFLICT (trace_id, span_id) DO UPDATE SET "
        + names.filter { $0 != "trace_id" && $0 != "span_id" }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
}

/// An experiment a trace is written into.
package struct MLflowExperiment: Sendable, Equatable {
    package var id: Int64
    package var artifactLocation: String?
    package init(id: Int64, artifactLocation: String?) {
        self.id = id
        self.artifactLocation = artifactLocation
    }

    /// The `mlflow.artifactLocation` tag of a new trace: `<artifact_location>/traces/<id>/artifacts`
    /// (`append_to_uri_path`).
    package func traceArtifactLocation(_ requestID: String) -> String? {
        guard var base = artifactLocation, !base.isEmpty else { return nil }
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/traces/" + requestID + "/artifacts"
    }
}

/// What a write into a stored trace reads of it (under a lock on its row).
package struct MLflowStoredTrace: Sendable, Equatable {
    package var experimentID: Int64
    package var timestampMs: Int64
    package var executionTimeMs: Int64?
    package var status: String
    /// The `mlflow.trace.spansLocation` tag.
    package var spansLocation: String?
    /// Metadata `mlflow.trace.infoFinalized` is set: MLflow's `start_trace` wrote the timing,
    /// token and cost values, which spans do not change.
    package var finalized: Bool
    package var hasTokenUsage: Bool
    package var hasCost: Bool

    package init(experimentID: Int64, timestampMs: Int64, executionTimeMs: Int64?, status: String, spansLocation: String?,
                 finalized: Bool, hasTokenUsage: Bool, hasCost: Bool) {
        self.experimentID = experimentID
        self.timestampMs = timestampMs
        self.executionTimeMs = executionTimeMs
        self.status = status
        self.spansLocation = spansLocation
        self.finalized = finalized
        self.hasTokenUsage = hasTokenUsage
        self.hasCost = hasCost
    }

    /// The select list that reads it from `trace_info ti`, in `init`'s order.
    package static let selectColumns = """
        ti.experiment_id, ti.timestamp_ms, ti.execution_time_ms, ti.status,
        (SELECT tt.value FROM trace_tags tt WHERE tt.request_id = ti.request_id AND tt.key = '\(MLflowRows.spansLocationTag)'),
        CASE WHEN EXISTS (SELECT 1 FROM trace_request_metadata m WHERE m.request_id = ti.request_id
            AND m.key = '\(MLflowRows.finalizedKey)') THEN 1 ELSE 0 END,
        CASE WHEN \(TokenUsage.allKeys.map { "ti.\($0) IS NOT NULL" }.joined(separator: " OR ")) THEN 1 ELSE 0 END,
        CASE WHEN \(TraceCost.keys.map { "ti.\($0) IS NOT NULL" }.joined(separator: " OR ")) THEN 1 ELSE 0 END
        """
}

/// The new values of a stored trace's `trace_info` row after a write (`MLflowRows.update`).
package struct MLflowTraceUpdate: TraceInfoValues, Sendable, Equatable {
    package var timestampMs: Int64
    package var executionTimeMs: Int64?
    package var status: String
    /// Set only where the column is NULL.
    package var requestPreview: String?
    package var responsePreview: String?
    package var sessionID: String?
    /// Set when not nil.
    package var traceName: String?
    package var tokenUsage: [String: Int64]
    package var cost: [String: Double]

    /// Each updated column (`StoreTables.traceInfoValueColumns`, in their order) and whether its new
    /// value replaces the old one, only fills a NULL (`COALESCE(old, new)`) or replaces it when
    /// given (`COALESCE(new, old)`).
    package static let columns: [(name: String, rule: Rule)] = StoreTables.traceInfoValueColumns.map { name in
        switch name {
        case "timestamp_ms", "execution_time_ms", "status": return (name, .replace)
        case "request_preview", "response_preview", "session_id": return (name, .fillNull)
        default: return (name, .replaceWhenGiven)
        }
    }

    package enum Rule: Sendable { case replace, fillNull, replaceWhenGiven }

    /// The SET list, with `value(column)` naming each new value (`?`, or `u.<column>`) and
    /// `old(column)` the stored one.
    package static func assignments(old: (String) -> String, value: (String) -> String) -> String {
        (["db_payload_generation = \(old("db_payload_generation")) + 1"] + columns.map { column, rule in
            switch rule {
            case .replace: return "\(column) = \(value(column))"
            case .fillNull: return "\(column) = COALESCE(\(old(column)), \(value(column)))"
            case .replaceWhenGiven: return "\(column) = COALESCE(\(value(column)), \(old(column)))"
            }
        }).joined(separator: ", ")
    }
}

/// MLflow's rules for the rows of one OTLP write (`SqlAlchemyStore._log_spans_once`, MLflow 3.17),
/// applied to a Stitch batch: each finished trace is one request's worth of spans.
package enum MLflowRows {
    package static let spansLocationTag = TraceDerivation.spansLocationTag
    package static let artifactLocationTag = "mlflow.artifactLocation"
    package static let finalizedKey = "mlflow.trace.infoFinalized"

    /// The tags a write upserts, in order (a later key overrides an earlier one: user tags from the
    /// root come after the resource's): spans location, the resource of the root (else the earliest span),
    /// the root's `mlflow.traceTag.*`; plus, for a new trace, its artifact location. Stitch's own
    /// `stitch.*` tags are not written: the rows are MLflow's.
    package static func tags(_ trace: PreparedTrace, newIn experiment: MLflowExperiment?) -> [(key: String, value: String)] {
        var pairs = trace.derivedAsNew.tags.filter { !$0.key.hasPrefix("stitch.") }
        if let location = experiment?.traceArtifactLocation(trace.requestID) {
            pairs.insert((artifactLocationTag, location), at: 0)
        }
        return pairs
    }

    /// Metadata inserted unless the key is there: only `mlflow.trace.user`.
    package static func metadata(_ trace: PreparedTrace) -> [(key: String, value: String)] {
        trace.derivedAsNew.userID.map { [(TraceMetadataKeys.user, $0)] } ?? []
    }

    /// Whether the batch's spans of a stored trace need its other stored spans: token usage or
    /// cost is recomputed over the whole span tree.
    package static func needsStoredSpans(_ trace: PreparedTrace, _ stored: MLflowStoredTrace) -> Bool {
        recomputesTokenUsage(trace, stored) || recomputesCost(trace, stored)
    }

    /// The batch brings token usage, and the stored value is not one MLflow's client finalized.
    private static func recomputesTokenUsage(_ trace: PreparedTrace, _ stored: MLflowStoredTrace) -> Bool {
        !trace.derivedAsNew.tokenUsage.isEmpty && !(stored.finalized && stored.hasTokenUsage)
    }

    /// The batch brings a cost, and the stored value is not one MLflow's client finalized.
    private static func recomputesCost(_ trace: PreparedTrace, _ stored: MLflowStoredTrace) -> Bool {
        !trace.derivedAsNew.cost.isEmpty && !(stored.finalized && stored.hasCost)
    }

    /// Keys of the spans' content that make a stored span needed for a recompute.
    package static let recomputeKeys = [MLflowKeys.tokenUsage, MLflowKeys.cost]

    /// The stored trace's new `trace_info` values: times widened (unless finalized), the status
    /// set from the root only while `IN_PROGRESS`, previews and session only where NULL, the
    /// trace name when the root gives one, tokens and costs recomputed over every span.
    /// - Parameter storedSpans: the trace's other stored spans (any that the batch also holds are
    ///   skipped), when `needsStoredSpans`.
    package static func update(_ trace: PreparedTrace, stored: MLflowStoredTrace, storedSpans: [SpanFacts]) -> MLflowTraceUpdate {
        let batch = trace.derivedAsNew
        let hasRoot = batch.status != "IN_PROGRESS"
        var timestamp = stored.timestampMs
        var executionTime = stored.executionTimeMs
        if !stored.finalized {
            timestamp = min(stored.timestampMs, batch.timestampMs)
            if let batchExecution = batch.executionTimeMs {
                let batchEnd = batch.timestampMs + batchExecution
                let storedEnd = stored.executionTimeMs.map { stored.timestampMs + $0 }
                executionTime = max(storedEnd ?? batchEnd, batchEnd) - timestamp
            }
        }
        var status = stored.status
        if hasRoot, stored.status == "IN_PROGRESS" || stored.status == "STATE_UNSPECIFIED" { status = batch.status }

        var tokenUsage: [String: Int64] = [:]
        var cost: [String: Double] = [:]
        if needsStoredSpans(trace, stored) {
            let batchIDs = Set(trace.spans.map(\.facts.spanID))
            let all = trace.spans.map(\.facts) + storedSpans.filter { !batchIDs.contains($0.spanID) }
            if recomputesTokenUsage(trace, stored),
               let usage = TraceDerivation.aggregate(all, keys: TokenUsage.requiredKeys, optionalKeys: TokenUsage.cacheKeys,
                                                     data: \.tokenUsage) {
                for (key, value) in usage { if let count = TraceDerivation.tokenCount(value) { tokenUsage[key] = count } }
            }
            if recomputesCost(trace, stored),
               let sums = TraceDerivation.aggregate(all, keys: TraceCost.keys, optionalKeys: [], data: \.cost) {
                for (key, value) in sums { if let amount = TraceDerivation.finiteDouble(value) { cost[key] = amount } }
            }
        }
        return MLflowTraceUpdate(
            timestampMs: timestamp, executionTimeMs: executionTime, status: status,
            requestPreview: batch.requestPreview, responsePreview: batch.responsePreview, sessionID: batch.sessionID,
            traceName: batch.traceName, tokenUsage: tokenUsage, cost: cost)
    }

    /// Why a stored trace is not written into: its spans are kept elsewhere (MLflow refuses the
    /// write too).
    package static func refusal(_ trace: PreparedTrace, _ stored: MLflowStoredTrace) -> String? {
        guard let location = stored.spansLocation, location != "TRACKING_STORE" else { return nil }
        return "trace \(trace.requestID) is stored by MLflow with its spans in \(location), not in the database"
    }
}

/// What one write into MLflow's database did, and the traces it left out for good.
package struct MLflowWriteResult: Sendable {
    package var tracesInserted = 0
    package var tracesMerged = 0
    package var spansWritten = 0
    /// Traces not written, each with the reason (an experiment that does not exist, a trace whose
    /// spans MLflow keeps elsewhere); they go to the dead letters.
    package var refused: [(requestID: String, experimentID: Int64, reason: String)] = []
    package init() {}

    /// Leaves out a trace whose experiment is not in MLflow's `experiments` table.
    package mutating func refuseUnknownExperiment(_ trace: PreparedTrace, _ experimentID: Int64) {
        refused.append((trace.requestID, experimentID, "MLflow experiment \(experimentID) does not exist"))
    }
}

extension PreparedTrace {
    /// Traces in rounds that each hold a trace id once (one statement may not touch a row twice;
    /// a fragment released right after its trace shares its id), each round in id order, so that
    /// every writer locks rows in the same order.
    package static func rounds(_ traces: [PreparedTrace]) -> [[PreparedTrace]] {
        var rounds: [[PreparedTrace]] = []
        var seen: [String: Int] = [:]
        for trace in traces {
            let round = seen[trace.requestID, default: 0]
            seen[trace.requestID] = round + 1
            if round == rounds.count { rounds.append([]) }
            rounds[round].append(trace)
        }
        return rounds.map { $0.sorted { $0.requestID < $1.requestID } }
    }

    /// The indexes of `spans` to write: a span listed twice (sent twice within the batch) keeps its
    /// last copy, as one statement may not update a row twice.
    package var lastCopyIndexes: [Int] {
        var last: [SpanID: Int] = [:]
        for index in spans.indices { last[spans[index].facts.spanID] = index }
        return spans.indices.filter { last[spans[$0].facts.spanID] == $0 }
    }
}
