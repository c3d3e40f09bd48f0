import Foundation
import OTLPModel
import OTLPWire

/// swift-protobuf's reading of a request, converted to the OTLPWire detail model: the reference the
/// fast reader is compared with. Written independently of OTLPWire's decoders.
enum Oracle {
    static func parse(_ bytes: [UInt8]) throws -> PBRequest {
        try PBRequest(serializedBytes: bytes)
    }

    static func value(_ value: PBAnyValue) -> AnyValue {
        switch value.value {
        case nil, .stringValueStrindex?: return .empty
        case .stringValue(let string)?: return .string(string)
        case .boolValue(let bool)?: return .bool(bool)
        case .intValue(let int)?: return .int(int)
        case .doubleValue(let double)?: return .double(double)
        case .bytesValue(let data)?: return .bytes(Array(data))
        case .arrayValue(let array)?: return .array(array.values.map(Self.value))
        case .kvlistValue(let list)?: return .kvlist(list.values.map(keyValue))
        }
    }

    static func keyValue(_ pair: PBKeyValue) -> KeyValue {
        KeyValue(key: pair.key, value: value(pair.value))
    }

    static func span(_ span: PBSpan) -> SpanDetail {
        SpanDetail(
            traceID: TraceID(bytes: span.traceID) ?? TraceID(high: 0, low: 0),
            spanID: SpanID(bytes: span.spanID) ?? .none,
            parentSpanID: SpanID(bytes: span.parentSpanID) ?? .none,
            traceState: span.traceState, name: span.name, kind: Int32(span.kind.rawValue),
            startTimeUnixNano: span.startTimeUnixNano, endTimeUnixNano: span.endTimeUnixNano,
            attributes: span.attributes.map(keyValue), droppedAttributesCount: span.droppedAttributesCount,
            events: span.events.map { event in
                SpanEvent(
                    timeUnixNano: event.timeUnixNano, name: event.name,
                    attributes: event.attributes.map(keyValue), droppedAttributesCount: event.droppedAttributesCount
                )
            },
            droppedEventsCount: span.droppedEventsCount,
            links: span.links.map { link in
                SpanLink(
                    traceID: Array(link.traceID), spanID: Array(link.spanID), traceState: link.traceState,
                    attributes: link.attributes.map(keyValue), droppedAttributesCount: link.droppedAttributesCount,
                    flags: link.flags
                )
            },
            droppedLinksCount: span.droppedLinksCount,
            statusCode: Int32(span.status.code.rawValue), statusMessage: span.status.message, flags: span.flags
        )
    }

    static func resource(_ resource: PBResource) -> ResourceDetail {
        ResourceDetail(attributes: resource.attributes.map(keyValue), droppedAttributesCount: resource.droppedAttributesCount)
    }

    static func scope(_ scope: PBScope) -> ScopeDetail {
        ScopeDetail(
            name: scope.name, version: scope.version, attributes: scope.attributes.map(keyValue),
            droppedAttributesCount: scope.droppedAttributesCount
        )
    }

    static func detail(_ request: PBRequest) -> [ResourceSpansDetail] {
        request.resourceSpans.map { resourceSpans in
            ResourceSpansDetail(
                resource: resourceSpans.hasResource ? resource(resourceSpans.resource) : nil,
                scopeSpans: resourceSpans.scopeSpans.map { scopeSpans in
                    ScopeSpansDetail(
                        scope: scopeSpans.hasScope ? scope(scopeSpans.scope) : nil,
                        spans: scopeSpans.spans.map(span), schemaURL: scopeSpans.schemaURL
                    )
                },
                schemaURL: resourceSpans.schemaURL
            )
        }
    }

    /// Why OTLP would refuse `span` (independent restatement of the rule), or nil.
    static func rejection(_ span: PBSpan) -> String? {
        if span.traceID.count != 16 { return "trace_id must be 16 bytes, got \(span.traceID.count)" }
        if span.traceID.allSatisfy({ $0 == 0 }) { return "trace_id must not be all zeros" }
        if span.spanID.count != 8 { return "span_id must be 8 bytes, got \(span.spanID.count)" }
        if span.spanID.allSatisfy({ $0 == 0 }) { return "span_id must not be all zeros" }
        if !span.parentSpanID.isEmpty, span.parentSpanID.count != 8 {
            return "parent_span_id must be empty or 8 bytes, got \(span.parentSpanID.count)"
        }
        return nil
    }

    /// The last `service.name` attribute's string value.
    static func serviceName(_ resourceSpans: PBResourceSpans) -> String? {
        guard let attribute = resourceSpans.resource.attributes.last(where: { $0.key == "service.name" }),
              case .stringValue(let name)? = attribute.value.value else { return nil }
        return name
    }
}
