import OTLPWire

/// Writes an `ExportTraceServiceRequest` as OTLP/JSON (otlp.md, "OTLP/JSON mapping"): lowerCamelCase
/// keys, hex trace and span ids, enums as integers, 64-bit integers as decimal strings.
///
/// Covers what the generator produces (string, bool, int, double attributes; no events or links).
public enum OTLPJSONEncoding {
    public static func request(_ resourceSpans: [ResourceSpansDetail]) -> [UInt8] {
        var out = JSONOutput()
        out.raw("{\"resourceSpans\":[")
        for (index, entry) in resourceSpans.enumerated() {
            if index > 0 { out.raw(",") }
            out.raw("{")
            if let resource = entry.resource {
                out.raw("\"resource\":{\"attributes\":")
                out.attributes(resource.attributes)
                out.raw("},")
            }
            out.raw("\"scopeSpans\":[")
            for (scopeIndex, scopeSpans) in entry.scopeSpans.enumerated() {
                if scopeIndex > 0 { out.raw(",") }
                out.raw("{")
                if let scope = scopeSpans.scope {
                    out.raw("\"scope\":{\"name\":")
                    out.string(scope.name)
                    out.raw(",\"version\":")
                    out.string(scope.version)
                    out.raw("},")
                }
                out.raw("\"spans\":[")
                for (spanIndex, span) in scopeSpans.spans.enumerated() {
                    if spanIndex > 0 { out.raw(",") }
                    out.span(span)
                }
                out.raw("]}")
            }
            out.raw("]}")
        }
        out.raw("]}")
        return out.bytes
    }
}

private struct JSONOutput {
    var bytes: [UInt8] = []

    mutating func raw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            case 0..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                raw("\\u00")
                bytes.append(digits[Int(byte >> 4)])
                bytes.append(digits[Int(byte & 0xF)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func span(_ span: SpanDetail) {
        raw("{\"traceId\":\"\(span.traceID.hex)\",\"spanId\":\"\(span.spanID.hex)\"")
        if !span.parentSpanID.isZero { raw(",\"parentSpanId\":\"\(span.parentSpanID.hex)\"") }
        if span.flags != 0 { raw(",\"flags\":\(span.flags)") }
        raw(",\"name\":")
        string(span.name)
        raw(",\"kind\":\(span.kind),\"startTimeUnixNano\":\"\(span.startTimeUnixNano)\"")
        raw(",\"endTimeUnixNano\":\"\(span.endTimeUnixNano)\",\"attributes\":")
        attributes(span.attributes)
        raw(",\"status\":{\"code\":\(span.statusCode)")
        if !span.statusMessage.isEmpty {
            raw(",\"message\":")
            string(span.statusMessage)
        }
        raw("}}")
    }

    mutating func attributes(_ attributes: [KeyValue]) {
        raw("[")
        for (index, attribute) in attributes.enumerated() {
            if index > 0 { raw(",") }
            raw("{\"key\":")
            string(attribute.key)
            raw(",\"value\":")
            value(attribute.value)
            raw("}")
        }
        raw("]")
    }

    mutating func value(_ value: AnyValue) {
        switch value {
        case .string(let text):
            raw("{\"stringValue\":")
            string(text)
            raw("}")
        case .bool(let flag): raw("{\"boolValue\":\(flag)}")
        case .int(let number): raw("{\"intValue\":\"\(number)\"}")
        case .double(let number): raw("{\"doubleValue\":\(number)}")
        case .array(let items):
            raw("{\"arrayValue\":{\"values\":[")
            for (index, item) in items.enumerated() {
                if index > 0 { raw(",") }
                self.value(item)
            }
            raw("]}}")
        case .kvlist(let pairs):
            raw("{\"kvlistValue\":{\"values\":")
            attributes(pairs)
            raw("}}")
        case .bytes, .empty:
            // Not produced by the generator; an empty AnyValue is valid OTLP/JSON.
            raw("{}")
        }
    }
}
