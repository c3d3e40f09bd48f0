import OTLPWire

/// What the trace-level derivation needs from one stored span. Built from a freshly converted
/// `MLflowSpan` or from a `spans` row's content, so that a merge recomputes a trace from
/// everything stored with the same rules as a first write.
package struct SpanFacts: Sendable, Equatable {
    package var spanID: SpanID
    /// `SpanID.none` for a root span.
    package var parentSpanID: SpanID
    package var startTimeUnixNano: Int64
    package var endTimeUnixNano: Int64
    /// `UNSET`, `OK` or `ERROR`.
    package var status: String
    /// The span's resource in `stitch_resources` (nil when unknown).
    package var resourceID: Int64?
    /// `mlflow.spanInputs` / `mlflow.spanOutputs` as stored; kept for the root only (the trace's
    /// previews are the root's).
    package var inputs: String?
    package var outputs: String?
    package var sessionID: String?
    package var userID: String?
    /// `mlflow.chat.tokenUsage` when it is a JSON object.
    package var tokenUsage: PyObject?
    /// `mlflow.llm.cost` when it is a JSON object.
    package var cost: PyObject?
    /// Validated `mlflow.traceTag.<key>` attributes (only used for the root), in attribute order.
    package var traceTags: [(key: String, value: String)]
    /// The trace this span called (`mlflow.gateway.linkedTraceId`), nil for most spans.
    package var gatewayLink: GatewayLink?

    package var isRoot: Bool { parentSpanID.isZero }

    package static func == (lhs: SpanFacts, rhs: SpanFacts) -> Bool {
        lhs.spanID == rhs.spanID && lhs.parentSpanID == rhs.parentSpanID
            && lhs.startTimeUnixNano == rhs.startTimeUnixNano && lhs.endTimeUnixNano == rhs.endTimeUnixNano
            && lhs.status == rhs.status && lhs.resourceID == rhs.resourceID && lhs.inputs == rhs.inputs
            && lhs.outputs == rhs.outputs && lhs.sessionID == rhs.sessionID && lhs.userID == rhs.userID
            && lhs.tokenUsage == rhs.tokenUsage && lhs.cost == rhs.cost
            && lhs.traceTags.elementsEqual(rhs.traceTags, by: { $0 == $1 }) && lhs.gatewayLink == rhs.gatewayLink
    }

    /// Reads the facts from a span's final (stored) attributes, as `_log_spans_once`
    /// (mlflow/store/tracking/sqlalchemy_store.py) reads them.
    package init(spanID: SpanID, parentSpanID: SpanID, startTimeUnixNano: Int64, endTimeUnixNano: Int64,
         status: String, resourceID: Int64?, attributes: PyObject) {
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.startTimeUnixNano = startTimeUnixNano
        self.endTimeUnixNano = endTimeUnixNano
        self.status = status
        self.resourceID = resourceID
        func string(_ key: String) -> String? {
            guard let value = attributes[key]?.stringValue, !value.isEmpty else { return nil }
            return value
        }
        inputs = parentSpanID.isZero ? string(MLflowKeys.inputs) : nil
        outputs = parentSpanID.isZero ? string(MLflowKeys.outputs) : nil
        // Session: `session.id`, else `gen_ai.conversation.id`; MLflow rejects the whole batch
        // when it is over 250 characters, Stitch ignores such a value instead.
        if let raw = string(MLflowKeys.sessionID) ?? string(MLflowKeys.conversationID) {
            let session = MLflowAttributes.unwrapJSONString(raw)
            sessionID = session.unicodeScalars.count <= TraceDerivation.maximumSessionIDLength ? session : nil
        } else {
            sessionID = nil
        }
        userID = string(MLflowKeys.userID).map {
            String(MLflowAttributes.unwrapJSONString($0).unicodeScalars.prefix(TraceTagRules.maximumValueLength))
        }
        tokenUsage = string(MLflowKeys.tokenUsage).flatMap { MLflowAttributes.loadsOrString($0).objectValue }
        cost = string(MLflowKeys.cost).flatMap { MLflowAttributes.loadsOrString($0).objectValue }
        var tags: [(key: String, value: String)] = []
        if parentSpanID.isZero {
            for pair in attributes.pairs where pair.key.hasPrefix(MLflowKeys.traceTagPrefix) {
                let key = String(pair.key.dropFirst(MLflowKeys.traceTagPrefix.count))
                let value = MLflowAttributes.unwrapJSONString(pair.value.stringValue ?? "")
                if let tag = TraceTagRules.validated(key: key, value: value) { tags.append(tag) }
            }
        }
        traceTags = tags
        gatewayLink = GatewayLink(linkedTraceID: string(MLflowKeys.gatewayLinkedTraceID),
                                  endpointName: string(MLflowKeys.gatewayEndpointName))
    }

    package init(span: MLflowSpan, resourceID: Int64?) {
        self.init(spanID: span.spanID, parentSpanID: span.parentSpanID,
                  startTimeUnixNano: Int64(clamping: span.startTimeUnixNano),
                  endTimeUnixNano: Int64(clamping: span.endTimeUnixNano),
                  status: span.statusName, resourceID: resourceID, attributes: span.attributes)
    }
}

/// A resource as the store keeps it: its attributes rendered as tag strings, in order.
package struct StoredResource: Sendable, Equatable {
    /// Every attribute (including `telemetry.sdk.*`), value as MLflow would render it as a tag.
    package let attributes: [ResourceAttribute]
    /// The trace tags MLflow derives from the resource: everything but `telemetry.sdk.*` and
    /// `mlflow.*`, validated like any trace tag. Kept, not computed per trace: a batch's traces
    /// share a few resources (checking the keys was ~2 % of preparing 10-span traces).
    package let traceTags: [(key: String, value: String)]

    package struct ResourceAttribute: Sendable, Equatable, Hashable {
        package var key: String
        package var value: String
    }

    package init(attributes: [ResourceAttribute]) {
        self.attributes = attributes
        traceTags = attributes.compactMap { attribute in
            if attribute.key.hasPrefix("telemetry.sdk.") || attribute.key.hasPrefix("mlflow.") { return nil }
            return TraceTagRules.validated(key: attribute.key, value: attribute.value)
        }
    }

    /// Equal when the attributes are (the trace tags follow from them).
    package static func == (lhs: StoredResource, rhs: StoredResource) -> Bool { lhs.attributes == rhs.attributes }

    package init(detail: ResourceDetail) {
        var seen: [String: Int] = [:]
        var rendered: [ResourceAttribute] = []
        for attribute in detail.attributes {
            let value = MLflowAttributes.tagValue(attribute.value)
            if let index = seen[attribute.key] {
                rendered[index].value = value
            } else {
                seen[attribute.key] = rendered.count
                rendered.append(ResourceAttribute(key: attribute.key, value: value))
            }
        }
        self.init(attributes: rendered)
    }

    package var serviceName: String? { attributes.first { $0.key == "service.name" }?.value }

    /// Canonical text, the resource's identity in `stitch_resources`.
    package var canonicalJSON: String {
        PyJSONWriter.dump(.object(PyObject(attributes.map { ($0.key, PyJSON.string($0.value)) })), ensureASCII: false)
    }

    package init?(canonicalJSON: String) {
        guard case .object(let object)? = PyJSONParser.parse(canonicalJSON) else { return nil }
        self.init(attributes: object.pairs.compactMap { pair in
            pair.value.stringValue.map { ResourceAttribute(key: pair.key, value: $0) }
        })
    }
}

/// Token usage keys (mlflow/tracing/constant.py `TokenUsageKey`), in MLflow's column order.
package enum TokenUsage {
    package static let inputKey = "input_tokens"
    package static let outputKey = "output_tokens"
    package static let totalKey = "total_tokens"
    package static let requiredKeys = [inputKey, outputKey, totalKey]
    package static let cacheKeys = ["cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation_input_tokens_above_1hr"]
    package static let allKeys = requiredKeys + cacheKeys
}

/// Cost keys (`CostKey`).
package enum TraceCost {
    package static let keys = ["input_cost", "output_cost", "total_cost"]
}

/// The `trace_info` value columns (`StoreTables.traceInfoValueColumns`) a writer binds.
package protocol TraceInfoValues {
    var timestampMs: Int64 { get }
    var executionTimeMs: Int64? { get }
    var status: String { get }
    var requestPreview: String? { get }
    var responsePreview: String? { get }
    var traceName: String? { get }
    var sessionID: String? { get }
    /// Keys of `TokenUsage.allKeys` that are known.
    var tokenUsage: [String: Int64] { get }
    /// Keys of `TraceCost.keys` that are known.
    var cost: [String: Double] { get }
}

/// Everything `trace_info`, `trace_tags` and `trace_request_metadata` hold for one trace.
package struct DerivedTrace: TraceInfoValues, Sendable, Equatable {
    package var timestampMs: Int64
    package var executionTimeMs: Int64?
    /// `OK`, `ERROR` or `IN_PROGRESS`.
    package var status: String
    package var requestPreview: String?
    package var responsePreview: String?
    package var sessionID: String?
    package var userID: String?
    package var traceName: String?
    /// Keys of `TokenUsage.allKeys` that are known.
    package var tokenUsage: [String: Int64]
    /// Keys of `TraceCost.keys` that are known.
    package var cost: [String: Double]
    /// In write order; a later key overrides an earlier one.
    package var tags: [(key: String, value: String)]

    package static func == (lhs: DerivedTrace, rhs: DerivedTrace) -> Bool {
        lhs.timestampMs == rhs.timestampMs && lhs.executionTimeMs == rhs.executionTimeMs && lhs.status == rhs.status
            && lhs.requestPreview == rhs.requestPreview && lhs.responsePreview == rhs.responsePreview
            && lhs.sessionID == rhs.sessionID && lhs.userID == rhs.userID && lhs.traceName == rhs.traceName
            && lhs.tokenUsage == rhs.tokenUsage && lhs.cost == rhs.cost
            && lhs.tags.elementsEqual(rhs.tags, by: { $0 == $1 })
    }

    /// Tags with later writes applied over earlier ones.
    package var tagDictionary: [String: String] {
        var result: [String: String] = [:]
        for tag in tags { result[tag.key] = tag.value }
        return result
    }
}

/// Derives a trace's stored fields from all of its spans (mlflow.md, "How MLflow derives a stored
/// trace from OTLP spans"; `_log_spans_once` in mlflow/store/tracking/sqlalchemy_store.py), plus
/// Stitch's own `stitch.*` tags.
package enum TraceDerivation {
    package static let previewMaximumLength = 1000
    package static let maximumSessionIDLength = 250
    package static let completenessTag = "stitch.completeness"
    package static let servicesTag = "stitch.services"
    package static let spansLocationTag = "mlflow.trace.spansLocation"

    /// - Parameters:
    ///   - spans: every span of the trace (any order).
    ///   - resources: the resources the spans name by `resourceID`.
    ///   - completeness: the `stitch.completeness` value to record.
    package static func derive(spans: [SpanFacts], resources: [Int64: StoredResource], completeness: String) -> DerivedTrace {
        precondition(!spans.isEmpty, "a trace has at least one span")
        // Earliest first; the span id breaks ties so that the result does not depend on arrival order.
        // (Sorted by index: the facts are large values, costly to move.)
        let ordered = spans.indices.sorted {
            (spans[$0].startTimeUnixNano, spans[$0].spanID.raw) < (spans[$1].startTimeUnixNano, spans[$1].spanID.raw)
        }.lazy.map { spans[$0] }
        let minStart = ordered[0].startTimeUnixNano
        let maxEnd = spans.map(\.endTimeUnixNano).max()!
        let timestampMs = floorDiv(minStart, 1_000_000)
        // MLflow: `(max_end_ms - min_start_ms) if max_end_ms else None`.
        let maxEndMs = floorDiv(maxEnd, 1_000_000)
        let executionTimeMs = maxEndMs != 0 ? maxEndMs - timestampMs : nil
        let root = ordered.first(where: \.isRoot)

        var derived = DerivedTrace(
            timestampMs: timestampMs, executionTimeMs: executionTimeMs,
            status: root.map { $0.status == "ERROR" ? "ERROR" : "OK" } ?? "IN_PROGRESS",
            requestPreview: root?.inputs.flatMap { preview($0, role: "user") },
            responsePreview: root?.outputs.flatMap { preview($0, role: "assistant") },
            sessionID: ordered.lazy.compactMap(\.sessionID).first,
            userID: ordered.lazy.compactMap(\.userID).first,
            traceName: nil, tokenUsage: [:], cost: [:], tags: [])

        if let usage = aggregate(spans, keys: TokenUsage.requiredKeys, optionalKeys: TokenUsage.cacheKeys, data: \.tokenUsage) {
            for (key, value) in usage { if let count = tokenCount(value) { derived.tokenUsage[key] = count } }
        }
        if let cost = aggregate(spans, keys: TraceCost.keys, optionalKeys: [], data: \.cost) {
            for (key, value) in cost { if let amount = finiteDouble(value) { derived.cost[key] = amount } }
        }

        // Tags: spans location, then the resource (the root's, else the earliest span's), then the
        // root's mlflow.traceTag.* (user tags win over resource attributes, as in MLflow).
        var tags: [(key: String, value: String)] = [(spansLocationTag, "TRACKING_STORE")]
        let tagSpan = root ?? ordered[0]
        if let resourceID = tagSpan.resourceID, let resource = resources[resourceID] {
            tags += resource.traceTags
        }
        for tag in root?.traceTags ?? [] {
            if tag.key == MLflowKeys.traceName {
                if tag.value.unicodeScalars.count <= TraceTagRules.maximumTraceNameLength { derived.traceName = tag.value }
            } else {
                tags.append(tag)
            }
        }
        tags.append((completenessTag, completeness))
        let services = Set(Set(spans.compactMap(\.resourceID)).compactMap { resources[$0]?.serviceName })
        if services.count > 1 {
            tags.append((servicesTag, services.sorted().joined(separator: ",")))
        }
        derived.tags = tags
        return derived
    }

    /// Python's `//` for the non-negative and negative cases alike.
    package static func floorDiv(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return (value % divisor != 0 && (value < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    // MARK: Previews

    /// `_get_truncated_preview` (mlflow/tracing/utils/truncation.py): for chat-shaped JSON, the
    /// text of the last message of `role`; otherwise the value itself; at most 1,000 characters
    /// (longer ones end in `...`). nil where MLflow's extraction raises (non-text content).
    package static func preview(_ value: String, role: String) -> String? {
        var content: PyJSON?
        if case .object(let object)? = PyJSONParser.parse(value),
           let messages = extractMessages(object), !messages.isEmpty {
            let message = messages.last(where: { $0["role"] == .string(role) }) ?? messages[messages.count - 1]
            content = textContent(message)
        }
        let text: String
        if let content, content.isTruthy {
            guard let string = content.stringValue else { return nil }
            text = string
        } else {
            text = value
        }
        // A text of at most that many bytes has at most that many characters: no need to count them.
        if text.utf8.count <= previewMaximumLength { return text }
        let scalars = text.unicodeScalars
        if scalars.count <= previewMaximumLength { return text }
        var truncated = String.UnicodeScalarView(scalars.prefix(previewMaximumLength - 3))
        truncated.append(contentsOf: "...".unicodeScalars)
        return String(truncated)
    }

    private static func isMessage(_ item: PyJSON) -> PyObject? {
        guard case .object(let object) = item, object["role"] != nil, object["content"] != nil else { return nil }
        return object
    }

    private static func extractMessages(_ object: PyObject) -> [PyObject]? {
        if let messages = object["messages"], messages.isTruthy, case .array(let items) = messages {
            return items.compactMap(isMessage)
        }
        if let choices = object["choices"], choices.isTruthy, case .array(let items) = choices,
           case .object(let first)? = items.first, let message = first["message"], message.isTruthy,
           let parsed = isMessage(message) {
            return [parsed]
        }
        if let input = object["input"], input.isTruthy, case .array(let items) = input {
            return items.compactMap(isMessage)
        }
        if let output = object["output"], output.isTruthy, case .array(let items) = output {
            return items.compactMap(isMessage)
        }
        if let request = object["request"] {
            if case .object(let inner) = request { return extractMessages(inner) }
            return nil
        }
        return nil
    }

    private static func textContent(_ message: PyObject) -> PyJSON {
        switch message["content"] {
        case .array(let parts)?:
            for part in parts {
                if case .string = part { return part }
                if case .object(let object) = part,
                   let type = object["type"]?.stringValue, type == "text" || type == "output_text" {
                    return object["text"] ?? .null
                }
            }
            return .null
        case .string(let text)?:
            return .string(text)
        default:
            return .string("")
        }
    }

    // MARK: Token usage and cost

    /// `_aggregate_from_nodes` (mlflow/tracing/utils/__init__.py): sums each span's data unless an
    /// ancestor already carried data (roll-up integrations put cumulative usage on parents).
    /// `keys` are always present in the result; `optionalKeys` when some counted span had them.
    package static func aggregate(_ spans: [SpanFacts], keys: [String], optionalKeys: [String],
                         data: (SpanFacts) -> PyObject?) -> [String: Double]? {
        // Most traces carry no token usage or cost at all: nothing to walk then.
        guard spans.contains(where: { data($0) != nil }) else { return nil }
        let ids = Set(spans.map(\.spanID))
        var children: [SpanID: [Int]] = [:]
        var stack: [(index: Int, ancestorHasData: Bool)] = []
        for (index, span) in spans.enumerated() {
            if !span.parentSpanID.isZero, ids.contains(span.parentSpanID) {
                children[span.parentSpanID, default: []].append(index)
            } else {
                stack.append((index, false))
            }
        }
        var totals: [String: Double] = [:]
        for key in keys { totals[key] = 0 }
        var hasData = false
        var visited = Set<Int>()
        while let (index, ancestorHasData) = stack.popLast() {
            // A cycle of parent links (malformed input) would loop forever; each span counts once.
            guard visited.insert(index).inserted else { continue }
            let nodeData = data(spans[index])
            if let nodeData, !ancestorHasData {
                for key in keys { totals[key, default: 0] += number(nodeData[key]) }
                for key in optionalKeys where nodeData[key] != nil {
                    totals[key, default: 0] += number(nodeData[key])
                }
                hasData = true
            }
            for child in children[spans[index].spanID] ?? [] {
                stack.append((child, ancestorHasData || nodeData != nil))
            }
        }
        return hasData ? totals : nil
    }

    private static func number(_ value: PyJSON?) -> Double {
        switch value {
        case .int(let number)?: return Double(number)
        case .double(let number)?: return number
        case .bool(let flag)?: return flag ? 1 : 0
        default: return 0
        }
    }

    /// `token_count_or_none`: integral, finite and within BIGINT.
    package static func tokenCount(_ value: Double) -> Int64? {
        guard value.isFinite, value == value.rounded(), abs(value) < 9.2e18 else { return nil }
        return Int64(value)
    }

    package static func finiteDouble(_ value: Double) -> Double? { value.isFinite ? value : nil }
}
