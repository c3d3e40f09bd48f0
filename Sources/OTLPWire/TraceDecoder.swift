/// The spans of one request that the pipeline can use, plus the count of those it could not.
package struct DecodedBatch: Sendable {
    package var payload: RequestPayload
    package var spans: [SpanRecord]
    /// Spans rejected one by one (wrong id length, all-zero ids): reported as OTLP partial success.
    package var rejectedSpans: Int
    /// Names the first rejected span and its problem, e.g.
    /// "resource_spans[0].scope_spans[1].spans[3]: trace_id must be 16 bytes, got 8".
    package var firstRejection: String?
    /// The cluster member that passed these spans on (`x-stitch-forwarded-by`): they are this
    /// instance's to assemble, whatever its own view of the cluster says. nil from clients.
    package var forwardedBy: String?
    package init(payload: RequestPayload, spans: [SpanRecord], rejectedSpans: Int, firstRejection: String?) {
        self.payload = payload
        self.spans = spans
        self.rejectedSpans = rejectedSpans
        self.firstRejection = firstRejection
    }
}

package enum OTLPTraceDecoder {
    /// How deeply `AnyValue`s may nest (through arrays and key-value lists) before a message is refused,
    /// so that hostile input cannot exhaust the stack of the recursive readers.
    package static let maxAnyValueDepth = 32

    /// Decodes an `ExportTraceServiceRequest`. Throws only when the body is not a decodable message;
    /// individually bad spans are counted in `rejectedSpans`.
    ///
    /// Reads the request twice without copying it: the first pass records every resource and scope
    /// (their byte ranges, `service.name`) and counts spans; the second reads each span's ids, times,
    /// kind, status code and flags, checks the structure of the rest, and keeps the span's byte range.
    /// The only strings materialized are the `service.name` values.
    ///
    /// Once this succeeds, `decodeDetail()` of every returned span and `resourceDetail(at:)` /
    /// `scopeDetail(at:)` of every index cannot fail.
    package static func decode(_ bytes: [UInt8], experimentID: String?) throws(WireError) -> DecodedBatch {
        let layout = try bytes.withUnsafeBufferPointer { buffer throws(WireError) in
            try RequestLayout.scan(WireReader(buffer, 0..<buffer.count))
        }
        let payload = RequestPayload(
            bytes: bytes, resources: layout.resources, scopes: layout.scopes, experimentID: experimentID
        )
        var collector = SpanCollector(payload: payload, capacity: layout.spanCount)
        try bytes.withUnsafeBufferPointer { buffer throws(WireError) in
            try collector.collect(WireReader(buffer, 0..<buffer.count))
        }
        return DecodedBatch(
            payload: payload, spans: collector.spans,
            rejectedSpans: collector.rejectedSpans, firstRejection: collector.firstRejection
        )
    }
}

/// The resources and scopes of a request, found by the first pass.
struct RequestLayout {
    var resources: [ResourceEntry] = []
    var scopes: [ScopeEntry] = []
    var spanCount = 0

    static func scan(_ request: WireReader) throws(WireError) -> RequestLayout {
        var layout = RequestLayout()
        var reader = request
        while let tag = try reader.readTag() {
            guard tag.number == Field.Request.resourceSpans, tag.wireType == .lengthDelimited else {
                try reader.skip(tag.wireType)
                continue
            }
            let range = try reader.readLengthDelimited()
            let index = layout.resources.count
            do {
                try layout.scanResourceSpans(WireReader(reader.buffer, range))
            } catch {
                throw error.prefixed("resource_spans[\(index)]")
            }
        }
        return layout
    }

    private mutating func scanResourceSpans(_ resourceSpans: WireReader) throws(WireError) {
        let resourceIndex = resources.count
        resources.append(ResourceEntry(resourceBytes: 0..<0, schemaURL: 0..<0, serviceName: nil))
        var scopeSpansIndex = 0
        var reader = resourceSpans
        while let tag = try reader.readTag() {
            guard tag.wireType == .lengthDelimited else {
                try reader.skip(tag.wireType)
                continue
            }
            let range = try reader.readLengthDelimited()
            switch tag.number {
            case Field.ResourceSpans.resource:
                // A repeated non-repeated message would be merged by protobuf; no encoder splits a
                // Resource, so the last one wins here (documented deviation).
                do {
                    try reader.checkStructure(.resource, range)
                } catch {
                    throw error.prefixed("resource")
                }
                resources[resourceIndex].resourceBytes = range
                resources[resourceIndex].serviceName = reader.serviceName(inResource: range)
            case Field.ResourceSpans.scopeSpans:
                do {
                    try scanScopeSpans(WireReader(reader.buffer, range), resourceIndex: resourceIndex)
                } catch {
                    throw error.prefixed("scope_spans[\(scopeSpansIndex)]")
                }
                scopeSpansIndex += 1
            case Field.ResourceSpans.schemaURL:
                resources[resourceIndex].schemaURL = range
            default:
                break
            }
        }
    }

    private mutating func scanScopeSpans(_ scopeSpans: WireReader, resourceIndex: Int) throws(WireError) {
        let scopeIndex = scopes.count
        scopes.append(ScopeEntry(resourceIndex: resourceIndex, scopeBytes: 0..<0, schemaURL: 0..<0))
        var reader = scopeSpans
        while let tag = try reader.readTag() {
            guard tag.wireType == .lengthDelimited else {
                try reader.skip(tag.wireType)
                continue
            }
            let range = try reader.readLengthDelimited()
            switch tag.number {
            case Field.ScopeSpans.scope:
                do {
                    try reader.checkStructure(.scope, range)
                } catch {
                    throw error.prefixed("scope")
                }
                scopes[scopeIndex].scopeBytes = range
            case Field.ScopeSpans.spans:
                spanCount += 1
            case Field.ScopeSpans.schemaURL:
                scopes[scopeIndex].schemaURL = range
            default:
                break
            }
        }
    }
}

extension WireReader {
    /// The last `service.name` attribute of the (already checked) resource in `range`, when its value
    /// is a string.
    func serviceName(inResource range: Range<Int>) -> String? {
        lastStringAttribute(named: "service.name", field: Field.Resource.attributes, in: range)
    }

    /// The value of the last attribute `name` among the `KeyValue`s in field `field` of the (already
    /// checked) message in `range` (a resource's or a span's attributes), when it is a string.
    func lastStringAttribute(named name: StaticString, field: UInt32, in range: Range<Int>) -> String? {
        var found: Range<Int>?? = nil
        var reader = WireReader(buffer, range)
        // The structure was checked, so these reads cannot fail; `try?` ends the loop if they did.
        while let tag = try? reader.readTag() {
            guard tag.number == field, tag.wireType == .lengthDelimited else {
                guard (try? reader.skip(tag.wireType)) != nil else { break }
                continue
            }
            guard let keyValue = try? reader.readLengthDelimited() else { break }
            if let value = stringAttribute(keyValue, named: name) {
                found = .some(value)
            }
        }
        guard let value = found ?? nil else { return nil }
        return string(value)
    }

    /// When the `KeyValue` in `range` has key `name`: `.some(range of the string value)`, or
    /// `.some(nil)` when the value is not a string. nil when the key differs.
    private func stringAttribute(_ range: Range<Int>, named name: StaticString) -> Range<Int>?? {
        var key: Range<Int>?
        // AnyValue is a oneof and repeated `value` fields merge: the last set field of all of them wins.
        var string: Range<Int>?
        var reader = WireReader(buffer, range)
        while let tag = try? reader.readTag() {
            guard tag.wireType == .lengthDelimited,
                  tag.number == Field.KeyValue.key || tag.number == Field.KeyValue.value else {
                guard (try? reader.skip(tag.wireType)) != nil else { return nil }
                continue
            }
            guard let contents = try? reader.readLengthDelimited() else { return nil }
            if tag.number == Field.KeyValue.key {
                key = contents
                continue
            }
            var value = WireReader(buffer, contents)
            while let tag = try? value.readTag() {
                if tag.number == Field.AnyValue.stringValue, tag.wireType == .lengthDelimited {
                    guard let contents = try? value.readLengthDelimited() else { return nil }
                    string = contents
                    continue
                }
                let isValueField = (Field.AnyValue.stringValue...Field.AnyValue.stringValueStrindex).contains(tag.number)
                if isValueField, tag.wireType == expectedWireType(anyValueField: tag.number) {
                    string = nil
                }
                guard (try? value.skip(tag.wireType)) != nil else { return nil }
            }
        }
        guard let key, bytes(key, equal: name) else { return nil }
        return .some(string)
    }

    private func expectedWireType(anyValueField field: UInt32) -> WireType {
        switch field {
        case Field.AnyValue.boolValue, Field.AnyValue.intValue, Field.AnyValue.stringValueStrindex: return .varint
        case Field.AnyValue.doubleValue: return .fixed64
        default: return .lengthDelimited
        }
    }
}

/// The second pass: one `SpanRecord` per valid span, rejections counted.
struct SpanCollector {
    let payload: RequestPayload
    var spans: [SpanRecord] = []
    var rejectedSpans = 0
    var firstRejection: String?

    init(payload: RequestPayload, capacity: Int) {
        self.payload = payload
        spans.reserveCapacity(capacity)
    }

    mutating func collect(_ request: WireReader) throws(WireError) {
        var reader = request
        var resourceIndex = 0
        var scopeIndex = 0
        while let tag = try reader.readTag() {
            guard tag.number == Field.Request.resourceSpans, tag.wireType == .lengthDelimited else {
                try reader.skip(tag.wireType)
                continue
            }
            var resourceSpans = WireReader(reader.buffer, try reader.readLengthDelimited())
            var scopeSpansIndex = 0
            while let tag = try resourceSpans.readTag() {
                guard tag.number == Field.ResourceSpans.scopeSpans, tag.wireType == .lengthDelimited else {
                    try resourceSpans.skip(tag.wireType)
                    continue
                }
                var scopeSpans = WireReader(reader.buffer, try resourceSpans.readLengthDelimited())
                var spanIndex = 0
                while let tag = try scopeSpans.readTag() {
                    guard tag.number == Field.ScopeSpans.spans, tag.wireType == .lengthDelimited else {
                        try scopeSpans.skip(tag.wireType)
                        continue
                    }
                    let range = try scopeSpans.readLengthDelimited()
                    let fields: HotSpanFields
                    do {
                        fields = try HotSpanFields(reader: WireReader(reader.buffer, range))
                    } catch {
                        throw error.prefixed(Self.path(resourceIndex, scopeSpansIndex, spanIndex))
                    }
                    if let problem = fields.problem(in: reader) {
                        rejectedSpans += 1
                        if firstRejection == nil {
                            firstRejection = "\(Self.path(resourceIndex, scopeSpansIndex, spanIndex)): \(problem)"
                        }
                    } else {
                        spans.append(fields.record(scopeIndex: scopeIndex, spanBytes: range, payload: payload, reader: reader))
                    }
                    spanIndex += 1
                }
                scopeIndex += 1
                scopeSpansIndex += 1
            }
            resourceIndex += 1
        }
    }

    static func path(_ resource: Int, _ scope: Int, _ span: Int) -> String {
        "resource_spans[\(resource)].scope_spans[\(scope)].spans[\(span)]"
    }
}

/// What the hot path reads from one `Span`: ids as byte ranges (validated afterwards), the rest as
/// integers. Proto3: the last occurrence of a scalar wins; `status` occurrences merge.
struct HotSpanFields {
    var traceID: Range<Int> = 0..<0
    var spanID: Range<Int> = 0..<0
    var parentSpanID: Range<Int> = 0..<0
    var startTimeUnixNano: UInt64 = 0
    var endTimeUnixNano: UInt64 = 0
    var flags: UInt32 = 0
    var kind: Int32 = 0
    var statusCode: Int32 = 0

    /// Reads the span's fields and checks the structure of its attributes, events and links.
    init(reader span: WireReader) throws(WireError) {
        var reader = span
        while let tag = try reader.readTag() {
            switch (tag.number, tag.wireType) {
            case (Field.Span.traceID, .lengthDelimited): traceID = try reader.readLengthDelimited()
            case (Field.Span.spanID, .lengthDelimited): spanID = try reader.readLengthDelimited()
            case (Field.Span.parentSpanID, .lengthDelimited): parentSpanID = try reader.readLengthDelimited()
            case (Field.Span.kind, .varint): kind = Int32(truncatingIfNeeded: try reader.readVarint())
            case (Field.Span.startTimeUnixNano, .fixed64): startTimeUnixNano = try reader.readFixed64()
            case (Field.Span.endTimeUnixNano, .fixed64): endTimeUnixNano = try reader.readFixed64()
            case (Field.Span.flags, .fixed32): flags = try reader.readFixed32()
            case (Field.Span.status, .lengthDelimited):
                var status = WireReader(reader.buffer, try reader.readLengthDelimited())
                while let tag = try status.readTag() {
                    if tag.number == Field.Status.code, tag.wireType == .varint {
                        statusCode = Int32(truncatingIfNeeded: try status.readVarint())
                    } else {
                        try status.skip(tag.wireType)
                    }
                }
            case (Field.Span.attributes, .lengthDelimited), (Field.Span.events, .lengthDelimited),
                 (Field.Span.links, .lengthDelimited):
                let contents = try reader.readLengthDelimited()
                // MessageShape.span knows which shape each of these fields has.
                try reader.checkStructure(MessageShape.span.child(tag.number)!, contents)
            default:
                try reader.skip(tag.wireType)
            }
        }
    }

    /// Why the span cannot be used (OTLP spec: trace and span ids are required, non-zero, of fixed
    /// length), or nil when it can.
    func problem(in reader: WireReader) -> String? {
        if traceID.count != 16 { return "trace_id must be 16 bytes, got \(traceID.count)" }
        if reader.isAllZero(traceID) { return "trace_id must not be all zeros" }
        if spanID.count != 8 { return "span_id must be 8 bytes, got \(spanID.count)" }
        if reader.isAllZero(spanID) { return "span_id must not be all zeros" }
        if !parentSpanID.isEmpty, parentSpanID.count != 8 {
            return "parent_span_id must be empty or 8 bytes, got \(parentSpanID.count)"
        }
        return nil
    }

    func record(scopeIndex: Int, spanBytes: Range<Int>, payload: RequestPayload, reader: WireReader) -> SpanRecord {
        let traceHigh = reader.bigEndian(traceID.lowerBound..<traceID.lowerBound + 8)
        let traceLow = reader.bigEndian(traceID.lowerBound + 8..<traceID.upperBound)
        return SpanRecord(
            traceID: TraceID(high: traceHigh, low: traceLow),
            spanID: SpanID(raw: reader.bigEndian(spanID)),
            // Empty or all-zero parent: a root span.
            parentSpanID: SpanID(raw: reader.bigEndian(parentSpanID)),
            startTimeUnixNano: startTimeUnixNano, endTimeUnixNano: endTimeUnixNano,
            flags: flags, kind: kind, statusCode: statusCode,
            scopeIndex: scopeIndex, spanBytes: spanBytes, payload: payload
        )
    }
}
