import OTLPWire
import TraceEdge

/// One `spans` row, computed before the write transaction (the CPU-heavy part of a write: decoding
/// and MLflow's JSON) so that the writer only binds values.
package struct SpanRow: Sendable, Equatable {
    package var spanID: String
    package var parentSpanID: String?
    package var name: String
    package var type: String?
    package var status: String
    package var startTimeUnixNano: Int64
    package var endTimeUnixNano: Int64
    /// `spans.content`, UTF-8 (bound as text without another copy).
    package var content: [UInt8]
    package var inputCost: Double?
    package var outputCost: Double?
    package var totalCost: Double?
    package var modelName: String?
    package var modelProvider: String?

    package static let modelDimensionMaximumLength = 500

    package init(span: MLflowSpan, kindInContent: Bool = true) {
        self.init(spanID: span.spanID, parentSpanID: span.parentSpanID, name: span.name, statusCode: span.statusCode,
                  startTimeUnixNano: span.startTimeUnixNano, endTimeUnixNano: span.endTimeUnixNano,
                  content: span.contentBytes(kindInContent: kindInContent), attribute: span.attribute)
    }

    /// - Parameters:
    ///   - statusCode: normalized (0 unset, 1 ok, 2 error).
    ///   - attribute: the span's stored (sanitized, translated) attribute text by key.
    package init(spanID: SpanID, parentSpanID: SpanID, name: String, statusCode: Int32, startTimeUnixNano: UInt64,
         endTimeUnixNano: UInt64, content: [UInt8], attribute: (String) -> String?) {
        self.spanID = spanID.hex
        self.parentSpanID = parentSpanID.isZero ? nil : parentSpanID.hex
        self.name = name
        // `Span.span_type` is `json.loads` of the attribute (the raw text when that fails). Stitch
        // reads the stored (sanitized, translated) attribute, so a type MLflow's own exporter
        // double-encodes (`"\"CHAIN\""`) is stored as CHAIN rather than as `"CHAIN"` with quotes.
        type = attribute(MLflowKeys.spanType).flatMap { raw in
            switch PyJSONParser.parse(raw) {
            case .string(let text)?: return text
            case .null?: return nil
            default: return raw
            }
        }
        status = MLflowSpan.statusName(statusCode)
        self.startTimeUnixNano = Int64(clamping: startTimeUnixNano)
        self.endTimeUnixNano = Int64(clamping: endTimeUnixNano)
        self.content = content
        let cost = attribute(MLflowKeys.cost).flatMap { PyJSONParser.parse($0)?.objectValue }
        func costValue(_ key: String) -> Double? {
            switch cost?[key] {
            case .int(let number)?: return Double(number)
            case .double(let number)? where number.isFinite: return number
            default: return nil
            }
        }
        inputCost = costValue("input_cost")
        outputCost = costValue("output_cost")
        totalCost = costValue("total_cost")
        // `bounded_model_dimension(_try_parse_json_string(…))`.
        func dimension(_ key: String) -> String? {
            attribute(key).map {
                String(MLflowAttributes.unwrapJSONString($0).unicodeScalars.prefix(Self.modelDimensionMaximumLength))
            }
        }
        modelName = dimension(MLflowKeys.model)
        modelProvider = dimension(MLflowKeys.modelProvider)
    }
}

/// A span ready to be written: its row, its facts for the trace derivation, and which of the
/// trace's resources it came from.
package struct PreparedSpan: Sendable {
    package var row: SpanRow
    /// `facts.resourceID` is nil here: the writer knows the stored ids of the trace's resources.
    package var facts: SpanFacts
    /// Index into `PreparedTrace.resources`, nil when the span's resource is unknown.
    package var resourceIndex: Int?
}

/// A finished trace converted to MLflow's shape, before it touches the database.
package struct PreparedTrace: Sendable {
    package var requestID: String
    /// Parsed from `FinishedTrace.experimentID`; nil means the store's default.
    package var experimentID: Int64?
    package var reason: ReleaseReason
    package var spans: [PreparedSpan]
    /// Distinct resources of the spans.
    package var resources: [StoredResource]
    /// `canonicalJSON` of each of `resources` (their identity in `stitch_resources`).
    package var resourceKeys: [String]
    /// The trace's derived fields if nothing of it is stored yet (the usual case), computed here,
    /// off the writer's thread; a trace that merges into a stored one is derived by the writer.
    package var derivedAsNew: DerivedTrace

    /// A span on its way into a `PreparedTrace`: decoded, or already converted by
    /// `DirectSpanConverter`.
    package enum SpanInput {
        case detail(SpanDetail)
        case converted(row: SpanRow, facts: SpanFacts)
    }

    /// Builds the trace from decoded spans; `resourceIndex` points into `resources` (the decoded
    /// resources of the spans' requests, possibly with repeats).
    package init(traceID: TraceID, experimentID: Int64?, reason: ReleaseReason,
         spans details: [(span: SpanDetail, resourceIndex: Int?)], resources resourceDetails: [ResourceDetail]) {
        let requestID = MLflowSpan.requestID(for: traceID)
        self.init(requestID: requestID, storedRequestID: PyJSONWriter.dumpString(requestID), experimentID: experimentID,
                  reason: reason, inputs: details.map { (.detail($0.span), $0.resourceIndex) },
                  resources: resourceDetails.map(PreparedResource.init), kindInContent: true)
    }

    /// - Parameter storedRequestID: `requestID` as MLflow stores it in the spans' attributes
    ///   (`json.dumps`), computed once per trace by the caller, who also needs it.
    private init(requestID: String, storedRequestID: String, experimentID: Int64?, reason: ReleaseReason,
                 inputs: [(span: SpanInput, resourceIndex: Int?)], resources preparedResources: [PreparedResource],
                 kindInContent: Bool) {
        self.requestID = requestID
        self.experimentID = experimentID
        self.reason = reason
        // Identical resources (the same service sending several requests) are stored once, told
        // apart by their canonical text (one string to hash, not every attribute's key and value).
        var distinct: [String: Int] = [:]
        var resources: [StoredResource] = []
        var resourceKeys: [String] = []
        var distinctIndex: [Int] = []
        for resource in preparedResources {
            if let known = distinct[resource.key] {
                distinctIndex.append(known)
            } else {
                distinct[resource.key] = resources.count
                distinctIndex.append(resources.count)
                resources.append(resource.stored)
                resourceKeys.append(resource.key)
            }
        }
        let serviceNames = preparedResources.map(\.serviceNameForRoot)
        spans = inputs.map { input, resourceIndex in
            let row: SpanRow
            let facts: SpanFacts
            switch input {
            case .detail(let detail):
                let span = MLflowSpan(detail: detail, resourceServiceName: resourceIndex.flatMap { serviceNames[$0] },
                                      storedRequestID: storedRequestID)
                row = SpanRow(span: span, kindInContent: kindInContent)
                facts = SpanFacts(span: span, resourceID: nil)
            case .converted(let converted, let convertedFacts):
                row = converted
                facts = convertedFacts
            }
            return PreparedSpan(row: row, facts: facts, resourceIndex: resourceIndex.map { distinctIndex[$0] })
        }
        self.resources = resources
        self.resourceKeys = resourceKeys
        // Derived with each resource's index standing in for its id: the derivation only pairs
        // spans with resources, it does not keep the ids.
        var localFacts = spans.map(\.facts)
        for index in localFacts.indices { localFacts[index].resourceID = spans[index].resourceIndex.map(Int64.init) }
        var localResources: [Int64: StoredResource] = [:]
        for (index, resource) in resources.enumerated() { localResources[Int64(index)] = resource }
        derivedAsNew = TraceDerivation.derive(spans: localFacts, resources: localResources, completeness: reason.rawValue)
    }

    /// Builds the trace from decoded spans each paired with its resource (tests build these by hand).
    package init(traceID: TraceID, experimentID: Int64?, reason: ReleaseReason,
         spans details: [(span: SpanDetail, resource: ResourceDetail?)]) {
        var resources: [ResourceDetail] = []
        let indexed = details.map { pair -> (span: SpanDetail, resourceIndex: Int?) in
            guard let resource = pair.resource else { return (pair.span, nil) }
            if let known = resources.firstIndex(of: resource) { return (pair.span, known) }
            resources.append(resource)
            return (pair.span, resources.count - 1)
        }
        self.init(traceID: traceID, experimentID: experimentID, reason: reason, spans: indexed, resources: resources)
    }

    /// Converts every span record of a finished trace: straight from its bytes where
    /// `DirectSpanConverter` can, else decoded first. Spans whose bytes do not decode are left out
    /// and reported in `failures` (the receiver has already validated them, so this means a bug).
    /// `direct: false` decodes every span (the tests compare both ways).
    package static func prepare(_ trace: FinishedTrace, experimentID: Int64?,
                        direct: Bool = true) -> (trace: PreparedTrace?, failures: [String]) {
        var context = PreparationContext()
        return prepare(trace, experimentID: experimentID, direct: direct, context: &context)
    }

    /// As above, sharing `context` with the other traces of a batch.
    package static func prepare(_ trace: FinishedTrace, experimentID: Int64?, direct: Bool = true,
                        context: inout PreparationContext) -> (trace: PreparedTrace?, failures: [String]) {
        var failures: [String] = []
        var inputs: [(span: SpanInput, resourceIndex: Int?)] = []
        inputs.reserveCapacity(trace.spans.count)
        // The trace's resources, each (payload, index) once.
        var resourceIndexes: [ResourceKey: Int?] = [:]
        var resources: [PreparedResource] = []
        let requestID = MLflowSpan.requestID(for: trace.traceID)
        let storedRequestID = PyJSONWriter.dumpString(requestID)
        for record in trace.spans {
            let key = ResourceKey(payload: ObjectIdentifier(record.payload), index: record.resourceIndex)
            if resourceIndexes[key] == nil {
                switch context.resource(of: record, key: key) {
                case .success(let resource):
                    resources.append(resource)
                    resourceIndexes[key] = resources.count - 1
                case .failure(let error):
                    failures.append("resource \(record.resourceIndex) of span \(record.spanID.hex): \(error)")
                    resourceIndexes[key] = .some(nil)
                }
            }
            let resourceIndex = resourceIndexes[key] ?? nil
            if direct, let converted = context.converter.convert(
                record, serviceNameForRoot: resourceIndex.flatMap { resources[$0].serviceNameForRoot },
                storedRequestID: storedRequestID) {
                inputs.append((.converted(row: converted.row, facts: converted.facts), resourceIndex))
                continue
            }
            do {
                inputs.append((.detail(try record.decodeDetail()), resourceIndex))
            } catch {
                failures.append("span \(record.spanID.hex): \(error)")
            }
        }
        guard !inputs.isEmpty else { return (nil, failures) }
        let prepared = PreparedTrace(requestID: requestID, storedRequestID: storedRequestID, experimentID: experimentID,
                                     reason: trace.reason, inputs: inputs, resources: resources,
                                     kindInContent: context.converter.kindInContent)
        return (prepared, failures)
    }

    /// What the traces of one store batch share: their spans come from the same requests (a
    /// service's request carries spans of many traces), so each request's resources are decoded
    /// once per batch rather than once per trace; and the converter's scratch buffers.
    package struct PreparationContext {
        package var converter: DirectSpanConverter
        private var resources: [ResourceKey: Result<PreparedResource, WireError>] = [:]

        /// `kindInContent`: false for MLflow before 3.18 (its span JSON has no `kind` key).
        package init(kindInContent: Bool = true) { converter = DirectSpanConverter(kindInContent: kindInContent) }

        fileprivate mutating func resource(of record: SpanRecord, key: ResourceKey) -> Result<PreparedResource, WireError> {
            if let known = resources[key] { return known }
            let result = Result { () throws(WireError) -> PreparedResource in
                PreparedResource(try record.payload.resourceDetail(at: record.resourceIndex))
            }
            resources[key] = result
            return result
        }
    }

    /// A decoded resource with what the store needs of it.
    package struct PreparedResource {
        package var stored: StoredResource
        /// `stored.canonicalJSON`: its identity in `stitch_resources`.
        package var key: String
        package var serviceNameForRoot: String?

        package init(_ detail: ResourceDetail) {
            stored = StoredResource(detail: detail)
            key = stored.canonicalJSON
            serviceNameForRoot = MLflowSpan.serviceNameForRoot(detail)
        }
    }

    fileprivate struct ResourceKey: Hashable {
        var payload: ObjectIdentifier
        var index: Int
    }
}

/// How good a release reason is as the trace's `stitch.completeness`: when a stored trace is
/// merged with a later release, the better one is kept (a later `closed` beats `timeout`).
package enum Completeness {
    package static func rank(_ reason: String) -> Int {
        switch reason {
        case ReleaseReason.closed.rawValue: return 5
        case ReleaseReason.tooLarge.rawValue: return 4
        case ReleaseReason.shutdown.rawValue: return 3
        case ReleaseReason.timeout.rawValue: return 2
        case ReleaseReason.evicted.rawValue: return 1
        default: return 0
        }
    }

    /// The value to keep when `incoming` merges into a trace tagged `existing`.
    package static func merge(existing: String?, incoming: ReleaseReason) -> String {
        guard let existing else { return incoming.rawValue }
        return rank(incoming.rawValue) > rank(existing) ? incoming.rawValue : existing
    }
}

/// The conversion step alone, for `stitch-bench-store --prepare-only`.
package enum StorePreparation {
    /// Converts every trace as the store does before writing, in batches of `batch` traces
    /// (`direct: false` decodes every span first, the general way); returns the bytes of span
    /// content produced.
    package static func prepare(_ traces: [FinishedTrace], direct: Bool = true, batch: Int = 500) -> Int {
        var total = 0
        for start in stride(from: 0, to: traces.count, by: max(1, batch)) {
            var context = PreparedTrace.PreparationContext()
            for trace in traces[start..<min(start + batch, traces.count)] {
                let prepared = PreparedTrace.prepare(trace, experimentID: nil, direct: direct, context: &context).trace
                total += prepared?.spans.reduce(0) { $0 + $1.row.content.count } ?? 0
            }
        }
        return total
    }
}
