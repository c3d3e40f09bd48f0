import OTLPWire

/// MLflow's conversion of a span (`MLflowSpan`, then its `SpanRow` and `SpanFacts`) done straight
/// from the span's protobuf bytes, for the shape nearly every span has. The general way decodes
/// every key and value into strings, dumps each value to JSON text, keeps them in an ordered
/// object and escapes them again into the content JSON; this way reads the keys and values where
/// they lie in the request, writes each value's stored text once into a scratch buffer and escapes
/// it from there, and makes strings only of the few attributes the row and the trace read.
///
/// The GenAI translation runs on the few attributes it reads (its `gen_ai.*` keys and the `mlflow.*`
/// keys it fills), only when one of its keys is present or a model name may come from the inputs or
/// outputs, and what it changes is carried over.
///
/// Spans this does not handle return nil and go the general way: events or links; a key that is
/// repeated or not ASCII; a root span from one of MLflow's known clients (its service name becomes
/// an attribute). Both ways give equal rows and facts: `DirectSpanConversionTests` compares them on
/// generated and captured spans.
package struct DirectSpanConverter {
    /// False for MLflow before 3.18, whose span JSON has no `kind` key.
    package let kindInContent: Bool
    private var layout = SpanLayout()
    /// The stored text of the current span's attributes, back to back.
    private var stored: [UInt8] = []
    private var storedRanges: [Range<Int>] = []

    /// Attributes `SpanRow` and `SpanFacts` read (besides root trace tags).
    private static let readKeys: [[UInt8]] = [
        MLflowKeys.inputs, MLflowKeys.outputs, MLflowKeys.spanType, MLflowKeys.cost, MLflowKeys.model,
        MLflowKeys.modelProvider, MLflowKeys.sessionID, MLflowKeys.userID, MLflowKeys.tokenUsage, MLflowKeys.chatTools,
        MLflowKeys.gatewayLinkedTraceID, MLflowKeys.gatewayEndpointName,
    ].map { Array($0.utf8) }
    private static let requestIDKey = Array(MLflowKeys.requestID.utf8)
    /// The keys the GenAI translation reads, and `gen_ai.conversation.id` (a session id).
    private static let translationKeys = (GenAITranslation.keysRead + [MLflowKeys.conversationID]).map { Array($0.utf8) }
    private static let spanTypeKey = Array(MLflowKeys.spanType.utf8)
    private static let traceTagPrefix = Array(MLflowKeys.traceTagPrefix.utf8)
    private static let inputsKey = Array(MLflowKeys.inputs.utf8)
    private static let outputsKey = Array(MLflowKeys.outputs.utf8)

    package init(kindInContent: Bool = true) { self.kindInContent = kindInContent }

    /// - Parameters:
    ///   - serviceNameForRoot: `MLflowSpan.serviceNameForRoot` of the span's resource.
    ///   - storedRequestID: the stored `mlflow.traceRequestId` text of the span's trace.
    package mutating func convert(_ record: SpanRecord, serviceNameForRoot: String?,
                          storedRequestID: String) -> (row: SpanRow, facts: SpanFacts)? {
        guard (try? record.layout(into: &layout)) == true, !layout.hasEvents, !layout.hasLinks else { return nil }
        if record.isRoot, let service = serviceNameForRoot, MLflowSpan.knownServiceNames.contains(service) { return nil }
        return record.payload.bytes.withUnsafeBufferPointer { buffer in
            convert(record, buffer, storedRequestID: storedRequestID)
        }
    }

    private mutating func convert(_ record: SpanRecord, _ buffer: UnsafeBufferPointer<UInt8>,
                                  storedRequestID: String) -> (row: SpanRow, facts: SpanFacts)? {
        stored.removeAll(keepingCapacity: true)
        storedRanges.removeAll(keepingCapacity: true)
        // The attributes the translation, the row and the facts read, as the general way holds them.
        var read = PyObject(capacity: 8)
        var requestIDIndex: Int?
        var keyBytes = 0
        var hasGenAI = false
        var spanTypeIndex: Int?
        var mayNameModel = false
        for (index, attribute) in layout.attributes.enumerated() {
            let key = UnsafeBufferPointer(rebasing: buffer[attribute.key])
            guard Self.isASCII(key) else { return nil }
            for earlier in layout.attributes[..<index] where earlier.key.count == key.count {
                if UnsafeBufferPointer(rebasing: buffer[earlier.key]).elementsEqual(key) { return nil }
            }
            keyBytes += key.count
            let start = stored.count
            if key.elementsEqual(Self.requestIDKey) {
                // MLflow sets its own value in the key's place.
                requestIDIndex = index
                PyJSONWriter.appendUTF8(storedRequestID, to: &stored)
                storedRanges.append(start..<stored.count)
                continue
            }
            guard appendStoredValue(attribute, buffer, record.payload) else { return nil }
            storedRanges.append(start..<stored.count)
            if key.elementsEqual(Self.spanTypeKey) { spanTypeIndex = index }
            let translated = Self.translationKeys.contains(where: { $0.count == key.count && $0.elementsEqual(key) })
            hasGenAI = hasGenAI || translated
            guard translated || Self.readKeys.contains(where: { $0.count == key.count && $0.elementsEqual(key) })
                    || (record.isRoot && key.starts(with: Self.traceTagPrefix)) else { continue }
            let isInputsOrOutputs = key.elementsEqual(Self.inputsKey) || key.elementsEqual(Self.outputsKey)
            let value = stored.withUnsafeBufferPointer { all -> String in
                let text = UnsafeBufferPointer(rebasing: all[start...])
                if isInputsOrOutputs, GenAITranslation.mayNameModel(text) { mayNameModel = true }
                // A child's inputs and outputs are only looked at by the translation, for a
                // `"model"` field: without one, a stand-in saves copying them into strings.
                return isInputsOrOutputs && !record.isRoot && !mayNameModel ? "" : String(decoding: text, as: UTF8.self)
            }
            read[String(decoding: key, as: UTF8.self)] = .string(value)
        }
        // The GenAI translation reads and writes only keys kept in `read`: run it there and carry
        // what it did over to the attributes. It only ever adds keys (at the end), except the span
        // type, which it may set in place.
        var added: ArraySlice<(key: String, value: PyJSON)> = []
        if hasGenAI || (mayNameModel && read[MLflowKeys.model] == nil) {
            let count = read.count
            let spanType = read[MLflowKeys.spanType]
            GenAITranslation.apply(to: &read)
            added = read.pairs[count...]
            if let index = spanTypeIndex, let type = read[MLflowKeys.spanType]?.stringValue, read[MLflowKeys.spanType] != spanType {
                let start = stored.count
                PyJSONWriter.appendUTF8(type, to: &stored)
                storedRanges[index] = start..<stored.count
            }
        }

        let statusCode = MLflowSpan.normalizedStatusCode(layout.statusCode)
        let name = String(decoding: buffer[layout.name], as: UTF8.self)
        let statusMessage = statusCode == 2 ? String(decoding: buffer[layout.statusMessage], as: UTF8.self) : ""
        var content: [UInt8] = []
        content.reserveCapacity(400 + name.utf8.count + keyBytes + 6 * storedRanges.count + stored.count * 9 / 8)
        MLflowSpan.writeContent(
            traceID: record.traceID, spanID: record.spanID, parentSpanID: record.parentSpanID, name: name,
            kind: kindInContent ? record.kind : nil, startTimeUnixNano: record.startTimeUnixNano, endTimeUnixNano: record.endTimeUnixNano,
            statusCode: statusCode, statusMessage: statusMessage, into: &content,
            events: { PyJSONWriter.append("[]", to: &$0) },
            attributes: { out in
                out.append(UInt8(ascii: "{"))
                self.stored.withUnsafeBufferPointer { stored in
                    for (index, (attribute, range)) in zip(self.layout.attributes, self.storedRanges).enumerated() {
                        if index > 0 { PyJSONWriter.append(", ", to: &out) }
                        PyJSONWriter.writeString(utf8: UnsafeBufferPointer(rebasing: buffer[attribute.key]), into: &out)
                        PyJSONWriter.append(": ", to: &out)
                        PyJSONWriter.writeString(utf8: UnsafeBufferPointer(rebasing: stored[range]), into: &out)
                    }
                }
                var more = requestIDIndex == nil ? [(key: MLflowKeys.requestID, value: storedRequestID)] : []
                more += added.map { ($0.key, $0.value.stringValue ?? "") }
                for (key, value) in more {
                    if out.last != UInt8(ascii: "{") { PyJSONWriter.append(", ", to: &out) }
                    PyJSONWriter.writeString(key, ensureASCII: false, into: &out)
                    PyJSONWriter.append(": ", to: &out)
                    PyJSONWriter.writeString(value, ensureASCII: false, into: &out)
                }
                out.append(UInt8(ascii: "}"))
            },
            links: { PyJSONWriter.append("[]", to: &$0) })

        let row = SpanRow(spanID: record.spanID, parentSpanID: record.parentSpanID, name: name, statusCode: statusCode,
                          startTimeUnixNano: record.startTimeUnixNano, endTimeUnixNano: record.endTimeUnixNano,
                          content: content, attribute: { read[$0]?.stringValue })
        let facts = SpanFacts(spanID: record.spanID, parentSpanID: record.parentSpanID,
                              startTimeUnixNano: Int64(clamping: record.startTimeUnixNano),
                              endTimeUnixNano: Int64(clamping: record.endTimeUnixNano),
                              status: row.status, resourceID: nil, attributes: read)
        return (row, facts)
    }

    /// Appends `MLflowAttributes.storedValue` of the attribute's value to `stored`; false when the
    /// value does not decode.
    private mutating func appendStoredValue(_ attribute: SpanLayout.Attribute, _ buffer: UnsafeBufferPointer<UInt8>,
                                            _ payload: RequestPayload) -> Bool {
        guard let range = attribute.string else {
            guard let value = try? payload.anyValue(at: attribute.value) else { return false }
            PyJSONWriter.appendUTF8(MLflowAttributes.storedValue(value), to: &stored)
            return true
        }
        let text = UnsafeBufferPointer(rebasing: buffer[range])
        guard Self.isASCII(text) else {
            // Not ASCII: through a String, which also replaces invalid UTF-8 as the general way does.
            PyJSONWriter.appendUTF8(MLflowAttributes.storedValue(.string(String(decoding: text, as: UTF8.self))), to: &stored)
            return true
        }
        if MLflowAttributes.holdsJSONStringObjectOrArray(utf8: text) {
            stored.append(contentsOf: text)
        } else {
            PyJSONWriter.writeString(utf8: text, into: &stored)
        }
        return true
    }

    /// Whether every byte is below 0x80, eight at a time.
    package static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        var index = 0
        var high: UInt64 = 0
        while index + 8 <= bytes.count {
            high |= UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
            index += 8
        }
        while index < bytes.count {
            high |= UInt64(bytes[index])
            index += 1
        }
        return high & 0x8080_8080_8080_8080 == 0
    }
}
