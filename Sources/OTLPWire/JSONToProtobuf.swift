package enum OTLPJSON {
    /// Converts an OTLP/JSON `ExportTraceServiceRequest` to its protobuf encoding (OTLP spec,
    /// "JSON Protobuf Encoding"): keys in lowerCamelCase (proto field names accepted too), unknown keys
    /// ignored, `null` treated as absent, trace / span ids as hex of either case, enums as integers or
    /// their names, 64-bit integers as decimal strings or numbers (read exactly, never through `Double`),
    /// `bytesValue` as base64, `doubleValue` also as "NaN" / "Infinity" / "-Infinity".
    ///
    /// Ids sent as base64 by mistake (a known client bug: 24 characters for a trace id, 12 for a span id)
    /// are decoded as base64. Other malformed ids do not fail the request: they are written with a wrong
    /// length (their UTF-8 text), so that `OTLPTraceDecoder` rejects that span alone.
    ///
    /// Throws `WireError` with the byte offset for invalid JSON, and for values of the wrong JSON type.
    package static func protobufFromJSON(_ json: [UInt8]) throws(WireError) -> [UInt8] {
        let root = try JSONParser.parse(json)
        var writer = WireWriter(capacity: json.count / 2)
        try JSONToProtobuf.request(root, into: &writer)
        return writer.bytes
    }
}

/// The OTLP/JSON → protobuf mapping, one function per message; each writes the message's contents.
enum JSONToProtobuf {
    static let spanKinds: [String: Int32] = [
        "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
        "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
    ]
    static let statusCodes: [String: Int32] = ["STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2]

    typealias MessageConverter = (JSONNode, inout WireWriter) throws(WireError) -> Void

    /// Writes `node` converted by `convert` as the sub-message field `field`.
    static func message(
        _ node: JSONNode, field: UInt32, into writer: inout WireWriter, _ convert: MessageConverter
    ) throws(WireError) {
        let start = writer.beginMessage(field)
        try convert(node, &writer)
        writer.endMessage(start)
    }

    /// Writes every element of the JSON array `node` as an occurrence of the sub-message field `field`.
    static func repeated(
        _ node: JSONNode, _ key: String, field: UInt32, into writer: inout WireWriter, _ convert: MessageConverter
    ) throws(WireError) {
        for element in try elements(node, key) {
            try message(element, field: field, into: &writer, convert)
        }
    }

    static func request(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "ExportTraceServiceRequest") where key == "resourceSpans" {
            try repeated(value, key, field: Field.Request.resourceSpans, into: &writer, resourceSpans)
        }
    }

    static func resourceSpans(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "resourceSpans") where !isNull(value) {
            switch key {
            case "resource":
                try message(value, field: Field.ResourceSpans.resource, into: &writer, resource)
            case "scopeSpans":
                try repeated(value, key, field: Field.ResourceSpans.scopeSpans, into: &writer, scopeSpans)
            case "schemaUrl":
                writer.stringField(Field.ResourceSpans.schemaURL, try string(value, key))
            default:
                break
            }
        }
    }

    static func resource(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "resource") where !isNull(value) {
            switch key {
            case "attributes": try attributes(value, field: Field.Resource.attributes, into: &writer)
            case "droppedAttributesCount":
                writer.varintField(Field.Resource.droppedAttributesCount, UInt64(try uint32(value, key)))
            case "entityRefs":
                try repeated(value, key, field: Field.Resource.entityRefs, into: &writer, entityRef)
            default: break
            }
        }
    }

    /// `common.v1.EntityRef`
    static func entityRef(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "entityRefs") where !isNull(value) {
            switch key {
            case "schemaUrl": writer.stringField(Field.EntityRef.schemaURL, try string(value, key))
            case "type": writer.stringField(Field.EntityRef.type, try string(value, key))
            case "idKeys", "descriptionKeys":
                for element in try elements(value, key) {
                    writer.lengthDelimited(key == "idKeys" ? Field.EntityRef.idKeys : Field.EntityRef.descriptionKeys, try string(element, key).utf8)
                }
            default: break
            }
        }
    }

    static func scopeSpans(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "scopeSpans") where !isNull(value) {
            switch key {
            case "scope":
                try message(value, field: Field.ScopeSpans.scope, into: &writer, scope)
            case "spans":
                try repeated(value, key, field: Field.ScopeSpans.spans, into: &writer, span)
            case "schemaUrl":
                writer.stringField(Field.ScopeSpans.schemaURL, try string(value, key))
            default:
                break
            }
        }
    }

    static func scope(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "scope") where !isNull(value) {
            switch key {
            case "name": writer.stringField(Field.Scope.name, try string(value, key))
            case "version": writer.stringField(Field.Scope.version, try string(value, key))
            case "attributes": try attributes(value, field: Field.Scope.attributes, into: &writer)
            case "droppedAttributesCount":
                writer.varintField(Field.Scope.droppedAttributesCount, UInt64(try uint32(value, key)))
            default: break
            }
        }
    }

    static func span(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "spans") where !isNull(value) {
            switch key {
            case "traceId": writer.bytesField(Field.Span.traceID, try id(value, key, length: 16))
            case "spanId": writer.bytesField(Field.Span.spanID, try id(value, key, length: 8))
            case "traceState": writer.stringField(Field.Span.traceState, try string(value, key))
            case "parentSpanId": writer.bytesField(Field.Span.parentSpanID, try id(value, key, length: 8))
            case "flags": writer.fixed32Field(Field.Span.flags, try uint32(value, key))
            case "name": writer.stringField(Field.Span.name, try string(value, key))
            case "kind": writer.int32Field(Field.Span.kind, try enumeration(value, key, names: spanKinds))
            case "startTimeUnixNano": writer.fixed64Field(Field.Span.startTimeUnixNano, try uint64(value, key))
            case "endTimeUnixNano": writer.fixed64Field(Field.Span.endTimeUnixNano, try uint64(value, key))
            case "attributes": try attributes(value, field: Field.Span.attributes, into: &writer)
            case "droppedAttributesCount":
                writer.varintField(Field.Span.droppedAttributesCount, UInt64(try uint32(value, key)))
            case "events":
                try repeated(value, key, field: Field.Span.events, into: &writer, event)
            case "droppedEventsCount":
                writer.varintField(Field.Span.droppedEventsCount, UInt64(try uint32(value, key)))
            case "links":
                try repeated(value, key, field: Field.Span.links, into: &writer, link)
            case "droppedLinksCount":
                writer.varintField(Field.Span.droppedLinksCount, UInt64(try uint32(value, key)))
            case "status":
                let start = writer.beginMessage(Field.Span.status)
                for (key, value) in try members(value, key) where !isNull(value) {
                    switch key {
                    case "message": writer.stringField(Field.Status.message, try string(value, key))
                    case "code": writer.int32Field(Field.Status.code, try enumeration(value, key, names: statusCodes))
                    default: break
                    }
                }
                writer.endMessage(start)
            default:
                break
            }
        }
    }

    static func event(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "events") where !isNull(value) {
            switch key {
            case "timeUnixNano": writer.fixed64Field(Field.Event.timeUnixNano, try uint64(value, key))
            case "name": writer.stringField(Field.Event.name, try string(value, key))
            case "attributes": try attributes(value, field: Field.Event.attributes, into: &writer)
            case "droppedAttributesCount":
                writer.varintField(Field.Event.droppedAttributesCount, UInt64(try uint32(value, key)))
            default: break
            }
        }
    }

    static func link(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "links") where !isNull(value) {
            switch key {
            case "traceId": writer.bytesField(Field.Link.traceID, try id(value, key, length: 16))
            case "spanId": writer.bytesField(Field.Link.spanID, try id(value, key, length: 8))
            case "traceState": writer.stringField(Field.Link.traceState, try string(value, key))
            case "attributes": try attributes(value, field: Field.Link.attributes, into: &writer)
            case "droppedAttributesCount":
                writer.varintField(Field.Link.droppedAttributesCount, UInt64(try uint32(value, key)))
            case "flags": writer.fixed32Field(Field.Link.flags, try uint32(value, key))
            default: break
            }
        }
    }

    /// A JSON array of `KeyValue` objects, each written as field `field`.
    static func attributes(_ node: JSONNode, field: UInt32, into writer: inout WireWriter) throws(WireError) {
        try repeated(node, "attributes", field: field, into: &writer, keyValue)
    }

    static func keyValue(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "KeyValue") where !isNull(value) {
            switch key {
            case "key": writer.stringField(Field.KeyValue.key, try string(value, key))
            case "value":
                try message(value, field: Field.KeyValue.value, into: &writer, anyValue)
            default: break
            }
        }
    }

    /// An `AnyValue`. Oneof members are written even when zero or empty (they have presence).
    static func anyValue(_ node: JSONNode, into writer: inout WireWriter) throws(WireError) {
        for (key, value) in try members(node, "AnyValue") where !isNull(value) {
            switch key {
            case "stringValue":
                writer.lengthDelimited(Field.AnyValue.stringValue, try string(value, key).utf8)
            case "boolValue":
                guard case .bool(let bool) = value.value else { throw typeError(value, key, "a boolean") }
                writer.tag(Field.AnyValue.boolValue, .varint)
                writer.varint(bool ? 1 : 0)
            case "intValue":
                writer.tag(Field.AnyValue.intValue, .varint)
                writer.varint(UInt64(bitPattern: try int64(value, key)))
            case "doubleValue":
                writer.tag(Field.AnyValue.doubleValue, .fixed64)
                writer.fixed64(try double(value, key).bitPattern)
            case "bytesValue":
                guard let bytes = Base64.decode(try string(value, key)) else { throw typeError(value, key, "base64") }
                writer.lengthDelimited(Field.AnyValue.bytesValue, bytes)
            case "arrayValue", "kvlistValue":
                let isArray = key == "arrayValue"
                let start = writer.beginMessage(isArray ? Field.AnyValue.arrayValue : Field.AnyValue.kvlistValue)
                for (listKey, listValue) in try members(value, key) where listKey == "values" && !isNull(listValue) {
                    try repeated(listValue, listKey, field: Field.List.values, into: &writer, isArray ? anyValue : keyValue)
                }
                writer.endMessage(start)
            case "stringValueStrindex":
                writer.tag(Field.AnyValue.stringValueStrindex, .varint)
                writer.varint(UInt64(bitPattern: Int64(try int32(value, key))))
            default:
                break
            }
        }
    }

    // MARK: JSON shapes

    /// An object's members with keys normalized to lowerCamelCase; `null` is an absent message.
    static func members(_ node: JSONNode, _ what: String) throws(WireError) -> Members {
        switch node.value {
        case .object(let members): return Members(raw: members)
        case .null: return Members(raw: [])
        default: throw typeError(node, what, "an object")
        }
    }

    /// The members of a JSON object, keys normalized as they are read (no copy of the object).
    struct Members: Sequence {
        var raw: [(key: String, node: JSONNode)]

        struct Iterator: IteratorProtocol {
            var base: IndexingIterator<[(key: String, node: JSONNode)]>
            mutating func next() -> (key: String, node: JSONNode)? {
                guard let member = base.next() else { return nil }
                return (JSONToProtobuf.camelCase(member.key), member.node)
            }
        }

        func makeIterator() -> Iterator { Iterator(base: raw.makeIterator()) }
    }

    static func elements(_ node: JSONNode, _ what: String) throws(WireError) -> [JSONNode] {
        switch node.value {
        case .array(let elements): return elements
        case .null: return []
        default: throw typeError(node, what, "an array")
        }
    }

    static func isNull(_ node: JSONNode) -> Bool {
        if case .null = node.value { return true }
        return false
    }

    /// `resource_spans` → `resourceSpans` (proto3 JSON parsers accept the proto field name too).
    static func camelCase(_ key: String) -> String {
        guard key.utf8.contains(UInt8(ascii: "_")) else { return key }
        var out = ""
        var upperNext = false
        for char in key {
            if char == "_" {
                upperNext = true
            } else {
                out.append(upperNext ? Character(char.uppercased()) : char)
                upperNext = false
            }
        }
        return out
    }

    static func typeError(_ node: JSONNode, _ key: String, _ expected: String) -> WireError {
        WireError("invalid OTLP/JSON at byte \(node.offset): \"\(key)\" must be \(expected)")
    }

    // MARK: scalars

    static func string(_ node: JSONNode, _ key: String) throws(WireError) -> String {
        guard case .string(let string) = node.value else { throw typeError(node, key, "a string") }
        return string
    }

    /// The text of an integer given as a JSON number or as a decimal string.
    private static func integerText(_ node: JSONNode) -> Substring? {
        switch node.value {
        case .number(let text): return Substring(text)
        case .string(let text): return Substring(text)
        default: return nil
        }
    }

    /// Exact decimal parse of an unsigned integer (digits only).
    private static func parseUnsigned(_ text: Substring) -> UInt64? {
        guard !text.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in text.utf8 {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return value
    }

    static func uint64(_ node: JSONNode, _ key: String) throws(WireError) -> UInt64 {
        guard let text = integerText(node), let value = parseUnsigned(text) else {
            throw typeError(node, key, "an unsigned 64-bit integer (number or decimal string)")
        }
        return value
    }

    static func uint32(_ node: JSONNode, _ key: String) throws(WireError) -> UInt32 {
        guard let text = integerText(node), let value = parseUnsigned(text), let narrow = UInt32(exactly: value) else {
            throw typeError(node, key, "an unsigned 32-bit integer")
        }
        return narrow
    }

    static func int64(_ node: JSONNode, _ key: String) throws(WireError) -> Int64 {
        guard let text = integerText(node) else { throw typeError(node, key, "a 64-bit integer (number or decimal string)") }
        let negative = text.hasPrefix("-")
        guard let magnitude = parseUnsigned(negative ? text.dropFirst() : text) else {
            throw typeError(node, key, "a 64-bit integer (number or decimal string)")
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw typeError(node, key, "a 64-bit integer in range") }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard let value = Int64(exactly: magnitude) else { throw typeError(node, key, "a 64-bit integer in range") }
        return value
    }

    static func int32(_ node: JSONNode, _ key: String) throws(WireError) -> Int32 {
        guard let value = Int32(exactly: try int64(node, key)) else { throw typeError(node, key, "a 32-bit integer") }
        return value
    }

    /// An enum as an integer (OTLP/JSON) or, as proto3 JSON allows, by its value name.
    static func enumeration(_ node: JSONNode, _ key: String, names: [String: Int32]) throws(WireError) -> Int32 {
        if case .string(let name) = node.value, let value = names[name] { return value }
        return try int32(node, key)
    }

    static func double(_ node: JSONNode, _ key: String) throws(WireError) -> Double {
        switch node.value {
        case .number(let text):
            if let value = Double(text) { return value }
        case .string("NaN"): return .nan
        case .string("Infinity"): return .infinity
        case .string("-Infinity"): return -.infinity
        case .string(let text):
            // proto3 JSON also accepts numbers as strings; check the grammar before Double(_:), which
            // would accept hex floats and "inf".
            if text.utf8.allSatisfy({ Self.numberCharacters.contains($0) }), let value = Double(text) { return value }
        default: break
        }
        throw typeError(node, key, "a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
    }

    private static let numberCharacters = Set("0123456789+-.eE".utf8)

    /// A trace or span id: hex (either case) normally; base64 when the text has the length a base64 id of
    /// `length` bytes has (24 / 12 characters) and decodes to `length` bytes. Malformed text is kept as
    /// its UTF-8 bytes, lengthened by one byte if it would otherwise pass as a valid id, so that the
    /// decoder rejects the span (and only it).
    static func id(_ node: JSONNode, _ key: String, length: Int) throws(WireError) -> [UInt8] {
        let text = try string(node, key)
        let utf8 = Array(text.utf8)
        if utf8.count == (length + 2) / 3 * 4, let decoded = Base64.decode(text), decoded.count == length {
            return decoded
        }
        if let decoded = hexBytes(utf8) { return decoded }
        return utf8.count == length ? utf8 + [0] : utf8
    }

    static func hexBytes(_ chars: [UInt8]) -> [UInt8]? {
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = HexCoding.nibble(chars[index]), let low = HexCoding.nibble(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
