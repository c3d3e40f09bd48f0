/// Where a span's name, status and attributes lie inside its request payload, found without
/// decoding any of them: what the store reads to write a span straight from the received bytes
/// (`SpanRecord.decodeDetail` decodes everything into strings and values instead).
package struct SpanLayout: Sendable {
    package struct Attribute: Sendable, Equatable {
        /// The key's bytes (UTF-8 as received, not validated).
        package var key: Range<Int>
        /// The value's bytes when the value is a plain `string_value`; nil for any other value.
        package var string: Range<Int>?
        /// The encoded `AnyValue` message (empty when the pair has none); `RequestPayload.anyValue(at:)`
        /// decodes it.
        package var value: Range<Int>
    }

    package var name: Range<Int> = 0..<0
    package var statusCode: Int32 = 0
    package var statusMessage: Range<Int> = 0..<0
    package var hasEvents = false
    package var hasLinks = false
    package var attributes: [Attribute] = []

    package init() {}
}

extension SpanRecord {
    /// Fills `layout` from the span's bytes, reusing its storage. Returns false when the span has a
    /// shape a layout cannot describe exactly: an attribute whose `value` field occurs twice (two
    /// `AnyValue`s that protobuf merges). The caller then decodes the span with `decodeDetail`.
    ///
    /// Follows the same proto3 rules as `decodeDetail`: the last name wins, status fields merge,
    /// a known field with an unexpected wire type is skipped.
    package func layout(into layout: inout SpanLayout) throws(WireError) -> Bool {
        layout.name = 0..<0
        layout.statusCode = 0
        layout.statusMessage = 0..<0
        layout.hasEvents = false
        layout.hasLinks = false
        layout.attributes.removeAll(keepingCapacity: true)
        return try payload.read(spanBytes, "span") { span, _ throws(WireError) -> Bool in
            var reader = span
            while let tag = try reader.readTag() {
                switch (tag.number, tag.wireType) {
                case (Field.Span.name, .lengthDelimited): layout.name = try reader.readLengthDelimited()
                case (Field.Span.attributes, .lengthDelimited):
                    guard let attribute = try reader.attributeLayout(try reader.readLengthDelimited()) else { return false }
                    layout.attributes.append(attribute)
                case (Field.Span.events, .lengthDelimited):
                    _ = try reader.readLengthDelimited()
                    layout.hasEvents = true
                case (Field.Span.links, .lengthDelimited):
                    _ = try reader.readLengthDelimited()
                    layout.hasLinks = true
                case (Field.Span.status, .lengthDelimited):
                    try reader.mergeStatus(try reader.readLengthDelimited(), code: &layout.statusCode, message: &layout.statusMessage)
                default: try reader.skip(tag.wireType)
                }
            }
            return true
        }
    }
}

extension RequestPayload {
    /// Decodes the `AnyValue` message in `range` (a `SpanLayout.Attribute.value`) as `decodeDetail`
    /// decodes an attribute's value.
    package func anyValue(at range: Range<Int>) throws(WireError) -> AnyValue {
        try read(range, "attribute value") { reader, range throws(WireError) -> AnyValue in
            var value = AnyValue.empty
            try reader.mergeAnyValue(range, into: &value, depth: 1)
            return value
        }
    }
}

extension WireReader {
    /// A `KeyValue`'s layout; nil when its value field occurs more than once.
    fileprivate func attributeLayout(_ range: Range<Int>) throws(WireError) -> SpanLayout.Attribute? {
        var attribute = SpanLayout.Attribute(key: 0..<0, string: nil, value: 0..<0)
        var sawValue = false
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.KeyValue.key, .lengthDelimited): attribute.key = try reader.readLengthDelimited()
            case (Field.KeyValue.value, .lengthDelimited):
                if sawValue { return nil }
                sawValue = true
                attribute.value = try reader.readLengthDelimited()
            default: try reader.skip(tag.wireType)
            }
        }
        if sawValue { attribute.string = try plainString(attribute.value) }
        return attribute
    }

    /// The string's bytes when the `AnyValue` in `range` holds exactly one field, a `string_value`.
    private func plainString(_ range: Range<Int>) throws(WireError) -> Range<Int>? {
        var reader = WireReader(buffer, range)
        guard let tag = try reader.readTag(), tag.number == Field.AnyValue.stringValue, tag.wireType == .lengthDelimited else {
            return nil
        }
        let string = try reader.readLengthDelimited()
        return reader.isAtEnd ? string : nil
    }
}
