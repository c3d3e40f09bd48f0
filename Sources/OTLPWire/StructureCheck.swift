/// The messages of the trace schema whose nested structure the hot path checks without decoding.
enum MessageShape {
    case span, event, link, status, resource, entityRef, scope, keyValue, anyValue, arrayValue, keyValueList

    /// The shape of a length-delimited field of this message, or nil when the field is a scalar
    /// (string / bytes) or unknown, whose contents are opaque.
    func child(_ field: UInt32) -> MessageShape? {
        switch (self, field) {
        case (.span, Field.Span.attributes): return .keyValue
        case (.span, Field.Span.events): return .event
        case (.span, Field.Span.links): return .link
        case (.span, Field.Span.status): return .status
        case (.event, Field.Event.attributes): return .keyValue
        case (.link, Field.Link.attributes): return .keyValue
        case (.resource, Field.Resource.attributes): return .keyValue
        case (.resource, Field.Resource.entityRefs): return .entityRef
        case (.scope, Field.Scope.attributes): return .keyValue
        case (.keyValue, Field.KeyValue.value): return .anyValue
        case (.anyValue, Field.AnyValue.arrayValue): return .arrayValue
        case (.anyValue, Field.AnyValue.kvlistValue): return .keyValueList
        case (.arrayValue, Field.List.values): return .anyValue
        case (.keyValueList, Field.List.values): return .keyValue
        default: return nil
        }
    }
}

extension WireReader {
    /// Checks that `range` holds a well-formed message of `shape`: every key valid, every length inside
    /// its parent, every known sub-message well-formed in turn. Does not materialize anything.
    ///
    /// After this succeeds for a span, resource or scope, the detail decoders cannot fail on it.
    func checkStructure(_ shape: MessageShape, _ range: Range<Int>, anyValueDepth: Int = 0) throws(WireError) {
        var depth = anyValueDepth
        if shape == .anyValue {
            depth += 1
            guard depth <= OTLPTraceDecoder.maxAnyValueDepth else {
                throw WireError("AnyValue nested deeper than \(OTLPTraceDecoder.maxAnyValueDepth) levels at byte \(range.lowerBound)")
            }
        }
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            if tag.wireType == .lengthDelimited, let child = shape.child(tag.number) {
                let contents = try reader.readLengthDelimited()
                try checkStructure(child, contents, anyValueDepth: depth)
            } else {
                try reader.skip(tag.wireType)
            }
        }
    }
}
