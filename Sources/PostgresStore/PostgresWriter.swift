import Logging
import OTLPWire
import PostgresNIO
import TraceModel

/// What one write transaction did.
struct PostgresWriteSummary: Sendable, Equatable {
    var tracesInserted = 0
    var tracesMerged = 0
    var tracesSplit = 0
    var spansWritten = 0
    /// Experiments and resources the transaction saw stored, to remember once it commits.
    var experiments: Set<Int64> = []
    var resources: [String: Int64] = [:]
}

/// The SQL side of one batch, on one connection inside one transaction: each table is written by
/// one statement whose parameters are arrays of the whole batch (a few round trips per batch,
/// whatever its size). Keys and `ON CONFLICT` make the result the same whichever Stitch instance
/// writes first; a trace stored already is locked (`FOR UPDATE`) before it is recomputed, so two
/// instances merging fragments of one trace take turns instead of overwriting each other.
struct PostgresWriter {
    let connection: PostgresConnection
    let logger: Logger
    let defaultExperimentID: Int64
    let nowMs: Int64
    /// Committed by earlier transactions (never deleted by Stitch).
    let knownExperiments: Set<Int64>
    let knownResources: [String: Int64]

    /// `ensuringDefault`: make sure the default experiment exists, whatever the traces name.
    func write(_ traces: [PreparedTrace], ensuringDefault: Bool) async throws -> PostgresWriteSummary {
        var summary = PostgresWriteSummary()
        if ensuringDefault { try await ensureExperiments([defaultExperimentID], summary: &summary) }
        // One trace id twice in a batch (a fragment released right after its trace): such traces
        // go in rounds, each round holding an id once, as one statement may not touch a row twice.
        for round in PreparedTrace.rounds(traces) {
            try await write(round, summary: &summary)
        }
        return summary
    }

    private func write(_ traces: [PreparedTrace], summary: inout PostgresWriteSummary) async throws {
        let resourceIDs = try await resourceIDs(for: traces, summary: &summary)
        let experiments = Set(traces.map { $0.experimentID ?? defaultExperimentID })
        try await ensureExperiments(experiments, summary: &summary)

        // Most traces are new: insert every trace_info row, and only the ids that were there
        // already (the insert skipped them) are merged.
        let inserted = try await TraceInfoValueColumns.insertNew(
            traces, defaultExperimentID: defaultExperimentID, connection: connection, logger: logger)
        let merging = traces.filter { !inserted.contains($0.requestID) }
        var mergingIDs = ColumnArray(.text, capacity: merging.count)
        for trace in merging { mergingIDs.append(trace.requestID) }
        var storedExperiment: [String: Int64] = [:]
        if !merging.isEmpty {
            for row in try await connection.run(Statements.LockStoredTraces(bindings: bindings(mergingIDs)), logger: logger) {
                let (id, experiment) = try row.decode((String, Int64).self)
                storedExperiment[id] = experiment
            }
        }

        try await upsertSpans(traces, resourceIDs: resourceIDs, experiment: { trace in
            storedExperiment[trace.requestID] ?? trace.experimentID ?? defaultExperimentID
        })
        try await upsertLinks(traces.flatMap(\.links))

        var derivedByTrace: [(requestID: String, derived: DerivedTrace)] = traces
            .filter { inserted.contains($0.requestID) }.map { ($0.requestID, $0.derivedAsNew) }
        if !merging.isEmpty {
            // In the order of `merging`, as `mergingIDs`.
            let merged = try await derive(merging, ids: mergingIDs)
            var mergedValues = TraceInfoValueColumns(capacity: merged.count)
            for (_, derived) in merged { mergedValues.append(derived) }
            try await connection.run(Statements.UpdateTraceInfo(bindings: mergedValues.bindings(after: mergingIDs)), logger: logger)
            try await connection.run(Statements.DeleteTags(bindings: bindings(mergingIDs)), logger: logger)
            derivedByTrace += merged
        }
        try await writeTagsAndMetadata(derivedByTrace)
        summary.tracesInserted += inserted.count
        summary.tracesMerged += merging.count
        summary.tracesSplit += merging.count { StoreInstruments.Written.isSplit($0.reason) }
        summary.spansWritten += traces.reduce(0) { $0 + $1.spans.count }
    }

    /// The batch's rows of `stitch_trace_links` (most batches have none).
    private func upsertLinks(_ links: [TraceLink]) async throws {
        guard !links.isEmpty else { return }
        var requestIDs = ColumnArray(.text, capacity: links.count)
        var spanIDs = ColumnArray(.text, capacity: links.count)
        var linkedIDs = ColumnArray(.text, capacity: links.count)
        var endpoints = ColumnArray(.text, capacity: links.count)
        for link in links {
            requestIDs.append(link.requestID)
            spanIDs.append(link.spanID)
            linkedIDs.append(link.linkedRequestID)
            endpoints.append(link.endpointName)
        }
        try await connection.run(Statements.UpsertLinks(bindings: bindings(requestIDs, spanIDs, linkedIDs, endpoints)), logger: logger)
    }

    // MARK: Experiments and resources

    /// An experiment id that arrives in a trace but is not in `experiments` is created, named after
    /// its id (or `<id> (stitch <n>)` when that name is taken), as the SQLite store does.
    private func ensureExperiments(_ wanted: Set<Int64>, summary: inout PostgresWriteSummary) async throws {
        let unknown = wanted.subtracting(knownExperiments).subtracting(summary.experiments).sorted()
        guard !unknown.isEmpty else { return }
        var ids = ColumnArray(.int8, capacity: unknown.count)
        var now = ColumnArray(.int8, capacity: unknown.count)
        for id in unknown {
            ids.append(id)
            now.append(nowMs)
        }
        try await connection.run(Statements.InsertExperiments(bindings: bindings(ids, now)), logger: logger)
        let existing = Set(try await connection.run(Statements.ExistingExperiments(bindings: bindings(ids)), logger: logger)
            .map { try $0.decode(Int64.self) })
        for id in unknown where !existing.contains(id) {
            // Its name is another experiment's.
            var attempt = 2
            while true {
                var bindings = PostgresBindings()
                bindings.append(id)
                bindings.append("\(id) (stitch \(attempt))")
                bindings.append(nowMs)
                try await connection.run(Statements.InsertNamedExperiment(bindings: bindings), logger: logger)
                var check = ColumnArray(.int8)
                check.append(id)
                if try await !connection.run(Statements.ExistingExperiments(bindings: PostgresStore.bindings(check)), logger: logger).isEmpty { break }
                attempt += 1
            }
        }
        summary.experiments.formUnion(unknown)
    }

    /// The stored id of every resource of the batch, by canonical JSON.
    private func resourceIDs(for traces: [PreparedTrace], summary: inout PostgresWriteSummary) async throws -> [String: Int64] {
        var result: [String: Int64] = [:]
        var missing: [(key: String, serviceName: String?)] = []
        var seen: Set<String> = []
        for trace in traces {
            for (resource, key) in zip(trace.resources, trace.resourceKeys) where seen.insert(key).inserted {
                if let id = knownResources[key] ?? summary.resources[key] { result[key] = id } else { missing.append((key, resource.serviceName)) }
            }
        }
        guard !missing.isEmpty else { return result }
        var attributes = ColumnArray(.text, capacity: missing.count)
        var serviceNames = ColumnArray(.text, capacity: missing.count)
        for entry in missing {
            attributes.append(entry.key)
            serviceNames.append(entry.serviceName)
        }
        try await connection.run(Statements.InsertResources(bindings: bindings(attributes, serviceNames)), logger: logger)
        for row in try await connection.run(Statements.ResourceIDs(bindings: bindings(attributes)), logger: logger) {
            let (id, text) = try row.decode((Int64, String).self)
            result[text] = id
            summary.resources[text] = id
        }
        // Stored attributes are compared as PostgreSQL gives them back: a resource whose text the
        // database changed (a NUL replaced) is looked up by that text.
        for entry in missing where result[entry.key] == nil {
            let stored = ColumnArray.storable(entry.key, maximumCharacters: nil)
            guard let id = result[stored] else { throw StoreError("could not record a resource in stitch_resources") }
            result[entry.key] = id
        }
        return result
    }

    // MARK: Rows

    private func upsertSpans(_ traces: [PreparedTrace], resourceIDs: [String: Int64],
                             experiment: (PreparedTrace) -> Int64) async throws {
        let count = traces.reduce(0) { $0 + $1.spans.count }
        var columns = SpanColumns(capacity: count)
        for trace in traces {
            let experimentID = experiment(trace)
            for index in trace.lastCopyIndexes {
                let span = trace.spans[index]
                let resourceID = span.resourceIndex.flatMap { resourceIDs[trace.resourceKeys[$0]] }
                columns.append(span.row, requestID: trace.requestID, experimentID: experimentID, resourceID: resourceID)
            }
        }
        try await connection.run(Statements.UpsertSpans(bindings: columns.bindings()), logger: logger)
    }

    /// Every merged trace recomputed from all its stored spans (the batch's are stored by now), in
    /// the order of `traces`; `ids` holds their request ids.
    private func derive(_ traces: [PreparedTrace], ids: ColumnArray) async throws -> [(requestID: String, derived: DerivedTrace)] {
        var facts: [String: [SpanFacts]] = [:]
        var resourceIDs: Set<Int64> = []
        for row in try await connection.run(Statements.StoredFacts(bindings: bindings(ids)), logger: logger) {
            let (traceID, spanID, parent, start, end, status, resource, content) =
                try row.decode((String, String, String?, Int64, Int64?, String, Int64?, String?).self)
            guard let fact = SpanFacts(storedSpanID: spanID, parentSpanID: parent, startTimeUnixNano: start,
                                       endTimeUnixNano: end, status: status, resourceID: resource, content: content) else { continue }
            facts[traceID, default: []].append(fact)
            if let resource { resourceIDs.insert(resource) }
        }
        var resources: [Int64: StoredResource] = [:]
        if !resourceIDs.isEmpty {
            var idColumn = ColumnArray(.int8, capacity: resourceIDs.count)
            for id in resourceIDs.sorted() { idColumn.append(id) }
            for row in try await connection.run(Statements.ResourcesByID(bindings: bindings(idColumn)), logger: logger) {
                let (id, text) = try row.decode((Int64, String).self)
                resources[id] = StoredResource(canonicalJSON: text)
            }
        }
        var completeness: [String: String] = [:]
        var tagBindings = bindings(ids)
        tagBindings.append(TraceDerivation.completenessTag)
        for row in try await connection.run(Statements.TagValues(bindings: tagBindings), logger: logger) {
            let (id, value) = try row.decode((String, String?).self)
            completeness[id] = value
        }
        return traces.map { trace in
            // The derivation does not depend on the order of the spans.
            let derived = TraceDerivation.derive(
                spans: facts[trace.requestID] ?? [], resources: resources,
                completeness: Completeness.merge(existing: completeness[trace.requestID], incoming: trace.reason))
            return (trace.requestID, derived)
        }
    }

    private func writeTagsAndMetadata(_ traces: [(requestID: String, derived: DerivedTrace)]) async throws {
        var tags = KeyValueColumns()
        var metadata = KeyValueColumns()
        for (requestID, derived) in traces {
            tags.append(derived.tags, requestID: requestID)
            if let user = derived.userID { metadata.append([(TraceMetadataKeys.user, user)], requestID: requestID) }
        }
        if let parameters = tags.bindings {
            try await connection.run(Statements.UpsertTags(bindings: parameters), logger: logger)
        }
        if let parameters = metadata.bindings {
            try await connection.run(Statements.UpsertMetadata(bindings: parameters), logger: logger)
        }
    }
}

/// The key, value and request id columns of many `trace_tags` or `trace_request_metadata` rows.
struct KeyValueColumns {
    private var keys = ColumnArray(.text, maximumCharacters: 250)
    private var values = ColumnArray(.text, maximumCharacters: 8000)
    private var ids = ColumnArray(.text, maximumCharacters: 50)

    /// One trace's pairs. Keys as PostgreSQL will hold them (a cut key may meet another), each
    /// once: the last value wins, as a one-by-one upsert lets it (one statement may not touch a
    /// row twice).
    mutating func append(_ pairs: [(key: String, value: String)], requestID: String) {
        var byKey: [String: String] = [:]
        var order: [String] = []
        for (key, value) in pairs {
            let stored = ColumnArray.storable(key, maximumCharacters: 250)
            if byKey.updateValue(value, forKey: stored) == nil { order.append(stored) }
        }
        for key in order {
            keys.append(key)
            values.append(byKey[key])
            ids.append(requestID)
        }
    }

    /// $1 keys, $2 values, $3 request ids; nil when there are no rows.
    var bindings: PostgresBindings? {
        guard keys.count > 0 else { return nil }
        var result = PostgresBindings(capacity: 3)
        result.append(keys)
        result.append(values)
        result.append(ids)
        return result
    }
}

/// The `trace_info` value columns of many traces (after the ids of `InsertTraceInfo` / `UpdateTraceInfo`).
struct TraceInfoValueColumns {
    var timestamp, executionTime: ColumnArray
    var status, requestPreview, responsePreview, traceName, sessionID: ColumnArray
    var tokens: [ColumnArray]
    var costs: [ColumnArray]

    init(capacity: Int) {
        timestamp = ColumnArray(.int8, capacity: capacity)
        executionTime = ColumnArray(.int8, capacity: capacity)
        status = ColumnArray(.text, maximumCharacters: 50, capacity: capacity)
        requestPreview = ColumnArray(.text, maximumCharacters: 1000, capacity: capacity)
        responsePreview = ColumnArray(.text, maximumCharacters: 1000, capacity: capacity)
        traceName = ColumnArray(.text, maximumCharacters: 4096, capacity: capacity)
        sessionID = ColumnArray(.text, maximumCharacters: 250, capacity: capacity)
        tokens = TokenUsage.allKeys.map { _ in ColumnArray(.int8, capacity: capacity) }
        costs = TraceCost.keys.map { _ in ColumnArray(.float8, capacity: capacity) }
    }

    mutating func append(_ derived: some TraceInfoValues) {
        timestamp.append(derived.timestampMs)
        executionTime.append(derived.executionTimeMs)
        status.append(derived.status)
        requestPreview.append(derived.requestPreview)
        responsePreview.append(derived.responsePreview)
        traceName.append(derived.traceName)
        sessionID.append(derived.sessionID)
        for (index, key) in TokenUsage.allKeys.enumerated() { tokens[index].append(derived.tokenUsage[key]) }
        for (index, key) in TraceCost.keys.enumerated() { costs[index].append(derived.cost[key]) }
    }

    /// Inserts a `trace_info` row for every trace whose id is not stored yet (`ON CONFLICT DO
    /// NOTHING`), and returns the ids it inserted; the others are merged by the caller.
    static func insertNew(_ traces: [PreparedTrace], defaultExperimentID: Int64,
                          connection: PostgresConnection, logger: Logger) async throws -> Set<String> {
        var ids = ColumnArray(.text, maximumCharacters: 50, capacity: traces.count)
        var experimentIDs = ColumnArray(.int8, capacity: traces.count)
        var values = TraceInfoValueColumns(capacity: traces.count)
        for trace in traces {
            ids.append(trace.requestID)
            experimentIDs.append(trace.experimentID ?? defaultExperimentID)
            values.append(trace.derivedAsNew)
        }
        return Set(try await connection.run(
            Statements.InsertTraceInfo(bindings: values.bindings(after: ids, experimentIDs)), logger: logger)
            .map { try $0.decode(String.self) })
    }

    /// The parameters: `leading` columns, then these.
    func bindings(after leading: ColumnArray...) -> PostgresBindings {
        var result = PostgresBindings(capacity: leading.count + Statements.traceInfoValueTypes.count)
        for column in leading + [timestamp, executionTime, status, requestPreview, responsePreview, traceName, sessionID]
            + tokens + costs {
            result.append(column)
        }
        return result
    }
}

/// The `spans` columns of many rows, in `Statements.spanColumns` order (without the last,
/// `stitch_resource_id`, for MLflow's own table: `MLflowSpanColumns`).
struct SpanColumns {
    var traceID, experimentID, spanID, parentSpanID, name, type, status, start, end, content: ColumnArray
    var inputCost, outputCost, totalCost, modelName, modelProvider, resourceID: ColumnArray
    let withResource: Bool

    init(capacity: Int, withResource: Bool = true) {
        self.withResource = withResource
        traceID = ColumnArray(.text, maximumCharacters: 50, capacity: capacity)
        experimentID = ColumnArray(.int8, capacity: capacity)
        spanID = ColumnArray(.text, maximumCharacters: 50, capacity: capacity)
        parentSpanID = ColumnArray(.text, maximumCharacters: 50, capacity: capacity)
        name = ColumnArray(.text, capacity: capacity)
        type = ColumnArray(.text, maximumCharacters: 500, capacity: capacity)
        status = ColumnArray(.text, maximumCharacters: 50, capacity: capacity)
        start = ColumnArray(.int8, capacity: capacity)
        end = ColumnArray(.int8, capacity: capacity)
        content = ColumnArray(.text, capacity: capacity * 64)
        inputCost = ColumnArray(.float8, capacity: capacity)
        outputCost = ColumnArray(.float8, capacity: capacity)
        totalCost = ColumnArray(.float8, capacity: capacity)
        modelName = ColumnArray(.text, maximumCharacters: 500, capacity: capacity)
        modelProvider = ColumnArray(.text, maximumCharacters: 500, capacity: capacity)
        resourceID = ColumnArray(.int8, capacity: capacity)
    }

    mutating func append(_ row: SpanRow, requestID: String, experimentID id: Int64, resourceID resource: Int64?) {
        traceID.append(requestID)
        experimentID.append(id)
        spanID.append(row.spanID)
        parentSpanID.append(row.parentSpanID)
        name.append(row.name)
        type.append(row.type)
        status.append(row.status)
        start.append(row.startTimeUnixNano)
        end.append(row.endTimeUnixNano)
        // Stitch's own JSON: control characters (NUL among them) are escaped in it.
        content.append(utf8: row.content)
        inputCost.append(row.inputCost)
        outputCost.append(row.outputCost)
        totalCost.append(row.totalCost)
        modelName.append(row.modelName)
        modelProvider.append(row.modelProvider)
        resourceID.append(resource)
    }

    func bindings() -> PostgresBindings {
        var result = PostgresBindings(capacity: 16)
        for column in [traceID, experimentID, spanID, parentSpanID, name, type, status, start, end, content,
                       inputCost, outputCost, totalCost, modelName, modelProvider] + (withResource ? [resourceID] : []) {
            result.append(column)
        }
        return result
    }
}
