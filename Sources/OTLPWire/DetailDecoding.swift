extension SpanRecord {
    /// Decodes the whole span from its bytes: name, attributes, events, links, status message...
    package func decodeDetail() throws(WireError) -> SpanDetail {
        try payload.read(spanBytes, "span") { reader, range throws(WireError) in try reader.spanDetail(range).detail }
    }
}

extension RequestPayload {
    /// Decodes `resources[index]` (an empty resource when its `ResourceSpans` had none).
    package func resourceDetail(at index: Int) throws(WireError) -> ResourceDetail {
        guard resources.indices.contains(index) else {
            throw WireError("resource index \(index) out of range (\(resources.count) resources)")
        }
        return try read(resources[index].resourceBytes, "resource") { reader, range throws(WireError) in
            try reader.resourceDetail(range)
        }
    }

    /// Decodes `scopes[index]` (an empty scope when its `ScopeSpans` had none).
    package func scopeDetail(at index: Int) throws(WireError) -> ScopeDetail {
        guard scopes.indices.contains(index) else {
            throw WireError("scope index \(index) out of range (\(scopes.count) scopes)")
        }
        return try read(scopes[index].scopeBytes, "scope") { reader, range throws(WireError) in
            try reader.scopeDetail(range)
        }
    }

    /// Runs `decode` on a reader over `range` of the payload, after checking that the range (which a
    /// caller may have built by hand) lies inside it.
    func read<T>(
        _ range: Range<Int>, _ what: String, _ decode: (WireReader, Range<Int>) throws(WireError) -> T
    ) throws(WireError) -> T {
        try bytes.withUnsafeBufferPointer { buffer throws(WireError) in
            guard range.lowerBound >= 0, range.upperBound <= buffer.count else {
                throw WireError("\(what) bytes \(range) outside the \(buffer.count)-byte payload")
            }
            return try decode(WireReader(buffer, range), range)
        }
    }
}

/// A decoded span together with its ids exactly as received (which may have the wrong length).
package struct RawSpanDetail {
    package var detail: SpanDetail
    package var traceID: [UInt8]
    package var spanID: [UInt8]
    package var parentSpanID: [UInt8]
}

/// Full decoders of the trace messages. Proto3 rules: the last occurrence of a scalar wins, repeated
/// fields may be split, occurrences of a singular message merge, a known field with an unexpected wire
/// type is skipped as unknown. Strings are decoded leniently (invalid UTF-8 becomes U+FFFD).
extension WireReader {
    /// Merges the `Status` message in `range` into `code` and `message` (the message's bytes): the
    /// fields it has replace what an earlier occurrence set.
    func mergeStatus(_ range: Range<Int>, code: inout Int32, message: inout Range<Int>) throws(WireError) {
        var status = WireReader(buffer, range)
        while let tag = try status.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.Status.message, .lengthDelimited): message = try status.readLengthDelimited()
            case (Field.Status.code, .varint): code = Int32(truncatingIfNeeded: try status.readVarint())
            default: try status.skip(tag.wireType)
            }
        }
    }

    func spanDetail(_ range: Range<Int>) throws(WireError) -> RawSpanDetail {
        var detail = SpanDetail(
            traceID: TraceID(high: 0, low: 0), spanID: .none, parentSpanID: .none,
            name: "", kind: 0, startTimeUnixNano: 0, endTimeUnixNano: 0
        )
        var traceID = 0..<0
        var spanID = 0..<0
        var parentSpanID = 0..<0
        var statusMessage = 0..<0
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.Span.traceID, .lengthDelimited): traceID = try reader.readLengthDelimited()
            case (Field.Span.spanID, .lengthDelimited): spanID = try reader.readLengthDelimited()
            case (Field.Span.traceState, .lengthDelimited): detail.traceState = string(try reader.readLengthDelimited())
            case (Field.Span.parentSpanID, .lengthDelimited): parentSpanID = try reader.readLengthDelimited()
            case (Field.Span.name, .lengthDelimited): detail.name = string(try reader.readLengthDelimited())
            case (Field.Span.kind, .varint): detail.kind = Int32(truncatingIfNeeded: try reader.readVarint())
            case (Field.Span.startTimeUnixNano, .fixed64): detail.startTimeUnixNano = try reader.readFixed64()
            case (Field.Span.endTimeUnixNano, .fixed64): detail.endTimeUnixNano = try reader.readFixed64()
            case (Field.Span.attributes, .lengthDelimited):
                // Room for a typical span's attributes at once, instead of growing 1, 2, 4, 8, 16.
                if detail.attributes.isEmpty { detail.attributes.reserveCapacity(16) }
                detail.attributes.append(try keyValue(try reader.readLengthDelimited(), depth: 0))
            case (Field.Span.droppedAttributesCount, .varint):
                detail.droppedAttributesCount = UInt32(truncatingIfNeeded: try reader.readVarint())
            case (Field.Span.events, .lengthDelimited):
                detail.events.append(try event(try reader.readLengthDelimited()))
            case (Field.Span.droppedEventsCount, .varint):
                detail.droppedEventsCount = UInt32(truncatingIfNeeded: try reader.readVarint())
            case (Field.Span.links, .lengthDelimited):
                detail.links.append(try link(try reader.readLengthDelimited()))
            case (Field.Span.droppedLinksCount, .varint):
                detail.droppedLinksCount = UInt32(truncatingIfNeeded: try reader.readVarint())
            case (Field.Span.status, .lengthDelimited):
                try mergeStatus(try reader.readLengthDelimited(), code: &detail.statusCode, message: &statusMessage)
            case (Field.Span.flags, .fixed32): detail.flags = try reader.readFixed32()
            default: try reader.skip(tag.wireType)
            }
        }
        detail.statusMessage = string(statusMessage)
        if let id = TraceID(bytes: UnsafeBufferPointer(rebasing: buffer[traceID])) { detail.traceID = id }
        if let id = SpanID(bytes: UnsafeBufferPointer(rebasing: buffer[spanID])) { detail.spanID = id }
        if let id = SpanID(bytes: UnsafeBufferPointer(rebasing: buffer[parentSpanID])) { detail.parentSpanID = id }
        return RawSpanDetail(
            detail: detail, traceID: array(traceID), spanID: array(spanID), parentSpanID: array(parentSpanID)
        )
    }

    func event(_ range: Range<Int>) throws(WireError) -> SpanEvent {
        var event = SpanEvent(timeUnixNano: 0, name: "", attributes: [], droppedAttributesCount: 0)
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.Event.timeUnixNano, .fixed64): event.timeUnixNano = try reader.readFixed64()
            case (Field.Event.name, .lengthDelimited): event.name = string(try reader.readLengthDelimited())
            case (Field.Event.attributes, .lengthDelimited):
                event.attributes.append(try keyValue(try reader.readLengthDelimited(), depth: 0))
            case (Field.Event.droppedAttributesCount, .varint):
                event.droppedAttributesCount = UInt32(truncatingIfNeeded: try reader.readVarint())
            default: try reader.skip(tag.wireType)
            }
        }
        return event
    }

    func link(_ range: Range<Int>) throws(WireError) -> SpanLink {
        var link = SpanLink(traceID: [], spanID: [], traceState: "", attributes: [], droppedAttributesCount: 0, flags: 0)
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.Link.traceID, .lengthDelimited): link.traceID = array(try reader.readLengthDelimited())
            case (Field.Link.spanID, .lengthDelimited): link.spanID = array(try reader.readLengthDelimited())
            case (Field.Link.traceState, .lengthDelimited): link.traceState = string(try reader.readLengthDelimited())
            case (Field.Link.attributes, .lengthDelimited):
                link.attributes.append(try keyValue(try reader.readLengthDelimited(), depth: 0))
            case (Field.Link.droppedAttributesCount, .varint):
                link.droppedAttributesCount = UInt32(truncatingIfNeeded: try reader.readVarint())
            case (Field.Link.flags, .fixed32): link.flags = try reader.readFixed32()
            default: try reader.skip(tag.wireType)
            }
        }
        return link
    }

    func resourceDetail(_ range: Range<Int>) throws(WireError) -> ResourceDetail {
        var resource = ResourceDetail(attributes: [])
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.Resource.attributes, .lengthDelimited):
                resource.attributes.append(try keyValue(try reader.readLengthDelimited(), depth: 0))
            case (Field.Resource.droppedAttributesCount, .varint):
                resource.droppedAttributesCount = UInt32(truncatingIfNeeded: try reader.readVarint())
            default: try reader.skip(tag.wireType)
            }
        }
        return resource
    }

    func scopeDetail(_ range: Range<Int>) throws(WireError) -> ScopeDetail {
        var scope = ScopeDetail(name: "", version: "")
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.Scope.name, .lengthDelimited): scope.name = string(try reader.readLengthDelimited())
            case (Field.Scope.version, .lengthDelimited): scope.version = string(try reader.readLengthDelimited())
            case (Field.Scope.attributes, .lengthDelimited):
                scope.attributes.append(try keyValue(try reader.readLengthDelimited(), depth: 0))
            case (Field.Scope.droppedAttributesCount, .varint):
                scope.droppedAttributesCount = UInt32(truncatingIfNeeded: try reader.readVarint())
            default: try reader.skip(tag.wireType)
            }
        }
        return scope
    }

    /// `depth` counts the `AnyValue`s enclosing this key-value pair.
    func keyValue(_ range: Range<Int>, depth: Int) throws(WireError) -> KeyValue {
        var pair = KeyValue(key: "", value: .empty)
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.KeyValue.key, .lengthDelimited): pair.key = string(try reader.readLengthDelimited())
            case (Field.KeyValue.value, .lengthDelimited):
                try mergeAnyValue(try reader.readLengthDelimited(), into: &pair.value, depth: depth + 1)
            default: try reader.skip(tag.wireType)
            }
        }
        return pair
    }

    /// Merges the `AnyValue` in `range` into `value`: the last set oneof field wins, except that an
    /// array or kvlist following one of the same kind is appended to it (protobuf message merge).
    func mergeAnyValue(_ range: Range<Int>, into value: inout AnyValue, depth: Int) throws(WireError) {
        guard depth <= OTLPTraceDecoder.maxAnyValueDepth else {
            throw WireError("AnyValue nested deeper than \(OTLPTraceDecoder.maxAnyValueDepth) levels at byte \(range.lowerBound)")
        }
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.AnyValue.stringValue, .lengthDelimited): value = .string(string(try reader.readLengthDelimited()))
            case (Field.AnyValue.boolValue, .varint): value = .bool(try reader.readVarint() != 0)
            case (Field.AnyValue.intValue, .varint): value = .int(Int64(bitPattern: try reader.readVarint()))
            case (Field.AnyValue.doubleValue, .fixed64): value = .double(Double(bitPattern: try reader.readFixed64()))
            case (Field.AnyValue.bytesValue, .lengthDelimited): value = .bytes(array(try reader.readLengthDelimited()))
            case (Field.AnyValue.stringValueStrindex, .varint):
                _ = try reader.readVarint()
                value = .empty
            case (Field.AnyValue.arrayValue, .lengthDelimited):
                var items: [AnyValue] = []
                if case .array(let existing) = value { items = existing }
                var list = WireReader(buffer, try reader.readLengthDelimited())
                while let tag = try list.readTag() {
                    if tag.number == Field.List.values, tag.wireType == .lengthDelimited {
                        var item = AnyValue.empty
                        try mergeAnyValue(try list.readLengthDelimited(), into: &item, depth: depth + 1)
                        items.append(item)
                    } else {
                        try list.skip(tag.wireType)
                    }
                }
                value = .array(items)
            case (Field.AnyValue.kvlistValue, .lengthDelimited):
                var pairs: [KeyValue] = []
                if case .kvlist(let existing) = value { pairs = existing }
                var list = WireReader(buffer, try reader.readLengthDelimited())
                while let tag = try list.readTag() {
                    if tag.number == Field.List.values, tag.wireType == .lengthDelimited {
                        pairs.append(try keyValue(try list.readLengthDelimited(), depth: depth))
                    } else {
                        try list.skip(tag.wireType)
                    }
                }
                value = .kvlist(pairs)
            default: try reader.skip(tag.wireType)
            }
        }
    }
}

/// A decoded `ScopeSpans` whose spans keep their ids as received.
package struct RawScopeSpans {
    package var scope: ScopeDetail?
    package var spans: [RawSpanDetail] = []
    package var schemaURL = ""
}

/// A decoded `ResourceSpans` whose spans keep their ids as received.
package struct RawResourceSpans {
    package var resource: ResourceDetail?
    package var scopeSpans: [RawScopeSpans] = []
    package var schemaURL = ""
}

extension OTLPTraceDecoder {
    /// Decodes a whole `ExportTraceServiceRequest` into the detail model, every span included, as the
    /// JSON and test paths need. Ids of the wrong length become zero here; `decode(_:experimentID:)`
    /// is the path that rejects such spans.
    package static func decodeDetail(_ bytes: [UInt8]) throws(WireError) -> [ResourceSpansDetail] {
        try rawDetail(bytes).map { resourceSpans in
            ResourceSpansDetail(
                resource: resourceSpans.resource,
                scopeSpans: resourceSpans.scopeSpans.map { scopeSpans in
                    ScopeSpansDetail(scope: scopeSpans.scope, spans: scopeSpans.spans.map(\.detail), schemaURL: scopeSpans.schemaURL)
                },
                schemaURL: resourceSpans.schemaURL
            )
        }
    }

    /// The request in the detail model, span ids as received. A repeated `resource` / `scope` field
    /// replaces the earlier one, as in `decode(_:experimentID:)`.
    package static func rawDetail(_ bytes: [UInt8]) throws(WireError) -> [RawResourceSpans] {
        try bytes.withUnsafeBufferPointer { buffer throws(WireError) in
            var result: [RawResourceSpans] = []
            var request = WireReader(buffer, 0..<buffer.count)
            while let tag = try request.readTag() {
                guard tag.number == Field.Request.resourceSpans, tag.wireType == .lengthDelimited else {
                    try request.skip(tag.wireType)
                    continue
                }
                var entry = RawResourceSpans()
                var reader = WireReader(buffer, try request.readLengthDelimited())
                while let tag = try reader.readTag() {
                    switch (tag.number, tag.wireType) {
                    case (Field.ResourceSpans.resource, .lengthDelimited):
                        entry.resource = try reader.resourceDetail(try reader.readLengthDelimited())
                    case (Field.ResourceSpans.scopeSpans, .lengthDelimited):
                        entry.scopeSpans.append(try reader.rawScopeSpans(try reader.readLengthDelimited()))
                    case (Field.ResourceSpans.schemaURL, .lengthDelimited):
                        entry.schemaURL = reader.string(try reader.readLengthDelimited())
                    default:
                        try reader.skip(tag.wireType)
                    }
                }
                result.append(entry)
            }
            return result
        }
    }
}

extension WireReader {
    func rawScopeSpans(_ range: Range<Int>) throws(WireError) -> RawScopeSpans {
        var entry = RawScopeSpans()
        var reader = WireReader(buffer, range)
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.ScopeSpans.scope, .lengthDelimited):
                entry.scope = try scopeDetail(try reader.readLengthDelimited())
            case (Field.ScopeSpans.spans, .lengthDelimited):
                entry.spans.append(try spanDetail(try reader.readLengthDelimited()))
            case (Field.ScopeSpans.schemaURL, .lengthDelimited):
                entry.schemaURL = string(try reader.readLengthDelimited())
            default:
                try reader.skip(tag.wireType)
            }
        }
        return entry
    }
}
