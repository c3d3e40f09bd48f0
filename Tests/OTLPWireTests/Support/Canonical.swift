import OTLPWire

/// `==` on the detail model is IEEE: NaN differs from itself. Tests compare with every NaN double
/// replaced by a marker string (the NaN is still checked to be a NaN).
protocol Canonical {
    var canonical: Self { get }
}

extension AnyValue: Canonical {
    var canonical: AnyValue {
        switch self {
        case .double(let value) where value.isNaN: return .string("‹NaN›")
        case .array(let items): return .array(items.map(\.canonical))
        case .kvlist(let pairs): return .kvlist(pairs.map(\.canonical))
        default: return self
        }
    }
}

extension KeyValue: Canonical {
    var canonical: KeyValue { KeyValue(key: key, value: value.canonical) }
}

extension SpanDetail: Canonical {
    var canonical: SpanDetail {
        var copy = self
        copy.attributes = attributes.map(\.canonical)
        copy.events = events.map { event in
            var event = event
            event.attributes = event.attributes.map(\.canonical)
            return event
        }
        copy.links = links.map { link in
            var link = link
            link.attributes = link.attributes.map(\.canonical)
            return link
        }
        return copy
    }
}

extension ResourceDetail: Canonical {
    var canonical: ResourceDetail { ResourceDetail(attributes: attributes.map(\.canonical), droppedAttributesCount: droppedAttributesCount) }
}

extension ScopeDetail: Canonical {
    var canonical: ScopeDetail {
        ScopeDetail(name: name, version: version, attributes: attributes.map(\.canonical), droppedAttributesCount: droppedAttributesCount)
    }
}

extension ResourceSpansDetail: Canonical {
    var canonical: ResourceSpansDetail {
        ResourceSpansDetail(
            resource: resource?.canonical,
            scopeSpans: scopeSpans.map { ScopeSpansDetail(scope: $0.scope?.canonical, spans: $0.spans.map(\.canonical), schemaURL: $0.schemaURL) },
            schemaURL: schemaURL
        )
    }
}

extension Array: Canonical where Element: Canonical {
    var canonical: [Element] { map(\.canonical) }
}
