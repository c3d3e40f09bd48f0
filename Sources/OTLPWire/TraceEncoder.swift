package enum OTLPTraceEncoder {
    /// An `ExportTraceServiceRequest` holding `spans`, grouped by their original resource and scope,
    /// by copying the received bytes (no re-encoding of spans).
    ///
    /// Groups are keyed by (payload, resource index) and (payload, scope index) and written in the order
    /// in which each first appears in `spans`; spans keep their order within a scope.
    package static func encodeRequest(_ spans: [SpanRecord]) -> [UInt8] {
        let groups = ResourceGroup.group(spans)
        var total = 0
        for group in groups {
            total += WireWriter.lengthDelimitedSize(field: Field.Request.resourceSpans, length: group.encodedSize)
        }
        var writer = WireWriter(capacity: total)
        for group in groups {
            group.write(into: &writer)
        }
        assert(writer.bytes.count == total, "encodeRequest size mismatch")
        return writer.bytes
    }

    /// An `ExportTraceServiceRequest` encoding `resourceSpans` field by field (for OTLP/JSON, tests and
    /// load generation; the forwarding path uses `encodeRequest(_:)`).
    package static func encodeRequest(resourceSpans: [ResourceSpansDetail]) -> [UInt8] {
        var writer = WireWriter()
        for entry in resourceSpans {
            writer.message(Field.Request.resourceSpans) { writer in
                if let resource = entry.resource {
                    writer.message(Field.ResourceSpans.resource) { $0.writeResource(resource) }
                }
                for scopeSpans in entry.scopeSpans {
                    writer.message(Field.ResourceSpans.scopeSpans) { writer in
                        if let scope = scopeSpans.scope {
                            writer.message(Field.ScopeSpans.scope) { $0.writeScope(scope) }
                        }
                        for span in scopeSpans.spans {
                            writer.message(Field.ScopeSpans.spans) { $0.writeSpan(span) }
                        }
                        writer.stringField(Field.ScopeSpans.schemaURL, scopeSpans.schemaURL)
                    }
                }
                writer.stringField(Field.ResourceSpans.schemaURL, entry.schemaURL)
            }
        }
        return writer.bytes
    }
}

/// The spans of one (payload, resource) pair, split by scope, in first-appearance order.
private struct ResourceGroup {
    var payload: RequestPayload
    var resourceIndex: Int
    var scopes: [ScopeGroup]

    struct ScopeGroup {
        var scopeIndex: Int
        var spans: [Range<Int>]
    }

    private struct Key: Hashable {
        var payload: ObjectIdentifier
        var index: Int
    }

    static func group(_ spans: [SpanRecord]) -> [ResourceGroup] {
        var groups: [ResourceGroup] = []
        var resourcePosition: [Key: Int] = [:]
        var scopePosition: [Key: (group: Int, scope: Int)] = [:]
        for span in spans {
            let payloadID = ObjectIdentifier(span.payload)
            let scopeKey = Key(payload: payloadID, index: span.scopeIndex)
            if let position = scopePosition[scopeKey] {
                groups[position.group].scopes[position.scope].spans.append(span.spanBytes)
                continue
            }
            let resourceKey = Key(payload: payloadID, index: span.resourceIndex)
            let group: Int
            if let existing = resourcePosition[resourceKey] {
                group = existing
            } else {
                group = groups.count
                resourcePosition[resourceKey] = group
                groups.append(ResourceGroup(payload: span.payload, resourceIndex: span.resourceIndex, scopes: []))
            }
            scopePosition[scopeKey] = (group, groups[group].scopes.count)
            groups[group].scopes.append(ScopeGroup(scopeIndex: span.scopeIndex, spans: [span.spanBytes]))
        }
        return groups
    }

    private func scopeSpansSize(_ scope: ScopeGroup) -> Int {
        let entry = payload.scopes[scope.scopeIndex]
        var size = 0
        if !entry.scopeBytes.isEmpty {
            size += WireWriter.lengthDelimitedSize(field: Field.ScopeSpans.scope, length: entry.scopeBytes.count)
        }
        for span in scope.spans {
            size += WireWriter.lengthDelimitedSize(field: Field.ScopeSpans.spans, length: span.count)
        }
        if !entry.schemaURL.isEmpty {
            size += WireWriter.lengthDelimitedSize(field: Field.ScopeSpans.schemaURL, length: entry.schemaURL.count)
        }
        return size
    }

    /// Size of the `ResourceSpans` message contents.
    var encodedSize: Int {
        let entry = payload.resources[resourceIndex]
        var size = 0
        if !entry.resourceBytes.isEmpty {
            size += WireWriter.lengthDelimitedSize(field: Field.ResourceSpans.resource, length: entry.resourceBytes.count)
        }
        for scope in scopes {
            size += WireWriter.lengthDelimitedSize(field: Field.ResourceSpans.scopeSpans, length: scopeSpansSize(scope))
        }
        if !entry.schemaURL.isEmpty {
            size += WireWriter.lengthDelimitedSize(field: Field.ResourceSpans.schemaURL, length: entry.schemaURL.count)
        }
        return size
    }

    /// Writes the `resource_spans` field; sizes are computed first so nothing is moved afterwards.
    func write(into writer: inout WireWriter) {
        let bytes = payload.bytes
        let entry = payload.resources[resourceIndex]
        writer.tag(Field.Request.resourceSpans, .lengthDelimited)
        writer.varint(UInt64(encodedSize))
        if !entry.resourceBytes.isEmpty {
            writer.lengthDelimited(Field.ResourceSpans.resource, bytes[entry.resourceBytes])
        }
        for scope in scopes {
            let scopeEntry = payload.scopes[scope.scopeIndex]
            writer.tag(Field.ResourceSpans.scopeSpans, .lengthDelimited)
            writer.varint(UInt64(scopeSpansSize(scope)))
            if !scopeEntry.scopeBytes.isEmpty {
                writer.lengthDelimited(Field.ScopeSpans.scope, bytes[scopeEntry.scopeBytes])
            }
            for span in scope.spans {
                writer.lengthDelimited(Field.ScopeSpans.spans, bytes[span])
            }
            if !scopeEntry.schemaURL.isEmpty {
                writer.lengthDelimited(Field.ScopeSpans.schemaURL, bytes[scopeEntry.schemaURL])
            }
        }
        if !entry.schemaURL.isEmpty {
            writer.lengthDelimited(Field.ResourceSpans.schemaURL, bytes[entry.schemaURL])
        }
    }
}

/// Field-by-field encoders of the decoded model.
extension WireWriter {
    mutating func writeSpan(_ span: SpanDetail) {
        bytesField(Field.Span.traceID, span.traceID.bytes)
        bytesField(Field.Span.spanID, span.spanID.bytes)
        stringField(Field.Span.traceState, span.traceState)
        if !span.parentSpanID.isZero {
            bytesField(Field.Span.parentSpanID, span.parentSpanID.bytes)
        }
        stringField(Field.Span.name, span.name)
        int32Field(Field.Span.kind, span.kind)
        fixed64Field(Field.Span.startTimeUnixNano, span.startTimeUnixNano)
        fixed64Field(Field.Span.endTimeUnixNano, span.endTimeUnixNano)
        writeAttributes(Field.Span.attributes, span.attributes)
        varintField(Field.Span.droppedAttributesCount, UInt64(span.droppedAttributesCount))
        for event in span.events {
            message(Field.Span.events) { writer in
                writer.fixed64Field(Field.Event.timeUnixNano, event.timeUnixNano)
                writer.stringField(Field.Event.name, event.name)
                writer.writeAttributes(Field.Event.attributes, event.attributes)
                writer.varintField(Field.Event.droppedAttributesCount, UInt64(event.droppedAttributesCount))
            }
        }
        varintField(Field.Span.droppedEventsCount, UInt64(span.droppedEventsCount))
        for link in span.links {
            message(Field.Span.links) { writer in
                writer.bytesField(Field.Link.traceID, link.traceID)
                writer.bytesField(Field.Link.spanID, link.spanID)
                writer.stringField(Field.Link.traceState, link.traceState)
                writer.writeAttributes(Field.Link.attributes, link.attributes)
                writer.varintField(Field.Link.droppedAttributesCount, UInt64(link.droppedAttributesCount))
                writer.fixed32Field(Field.Link.flags, link.flags)
            }
        }
        varintField(Field.Span.droppedLinksCount, UInt64(span.droppedLinksCount))
        if span.statusCode != 0 || !span.statusMessage.isEmpty {
            message(Field.Span.status) { writer in
                writer.stringField(Field.Status.message, span.statusMessage)
                writer.int32Field(Field.Status.code, span.statusCode)
            }
        }
        fixed32Field(Field.Span.flags, span.flags)
    }

    mutating func writeResource(_ resource: ResourceDetail) {
        writeAttributes(Field.Resource.attributes, resource.attributes)
        varintField(Field.Resource.droppedAttributesCount, UInt64(resource.droppedAttributesCount))
    }

    mutating func writeScope(_ scope: ScopeDetail) {
        stringField(Field.Scope.name, scope.name)
        stringField(Field.Scope.version, scope.version)
        writeAttributes(Field.Scope.attributes, scope.attributes)
        varintField(Field.Scope.droppedAttributesCount, UInt64(scope.droppedAttributesCount))
    }

    mutating func writeAttributes(_ field: UInt32, _ attributes: [KeyValue]) {
        for attribute in attributes {
            message(field) { $0.writeKeyValue(attribute) }
        }
    }

    mutating func writeKeyValue(_ pair: KeyValue) {
        stringField(Field.KeyValue.key, pair.key)
        if pair.value != .empty {
            message(Field.KeyValue.value) { $0.writeAnyValue(pair.value) }
        }
    }

    /// The contents of an `AnyValue`. Oneof members have presence, so zero / empty values are written.
    mutating func writeAnyValue(_ value: AnyValue) {
        switch value {
        case .string(let string):
            lengthDelimited(Field.AnyValue.stringValue, string.utf8)
        case .bool(let bool):
            tag(Field.AnyValue.boolValue, .varint)
            varint(bool ? 1 : 0)
        case .int(let int):
            tag(Field.AnyValue.intValue, .varint)
            varint(UInt64(bitPattern: int))
        case .double(let double):
            tag(Field.AnyValue.doubleValue, .fixed64)
            fixed64(double.bitPattern)
        case .bytes(let bytes):
            lengthDelimited(Field.AnyValue.bytesValue, bytes)
        case .array(let items):
            message(Field.AnyValue.arrayValue) { writer in
                for item in items {
                    writer.message(Field.List.values) { $0.writeAnyValue(item) }
                }
            }
        case .kvlist(let pairs):
            message(Field.AnyValue.kvlistValue) { writer in
                for pair in pairs {
                    writer.message(Field.List.values) { $0.writeKeyValue(pair) }
                }
            }
        case .empty:
            break
        }
    }
}
