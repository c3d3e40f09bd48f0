import OTLPWire

/// MLflow's rules for turning OTLP attribute values into the strings it stores.
///
/// `Span.from_otel_proto` (mlflow/entities/span.py) decodes each `AnyValue` to a Python value and
/// stores `json.dumps(value, ensure_ascii=False)` (`dump_span_attribute_value`); when the store
/// writes the span, `sanitize_attributes` (mlflow/tracing/otel/translation/__init__.py) removes
/// one layer again where the value was a string that itself holds a JSON string, object or
/// array. That is why `"CHAIN"` is stored as `"\"CHAIN\""`, `{"question": …}` stays as sent and
/// `"4"` becomes `"\"4\""` (a JSON number inside a string is not unwrapped).
package enum MLflowAttributes {
    /// `_decode_otel_proto_anyvalue`, with bytes rendered as `TraceJSONEncoder` renders them
    /// (`str(bytes)`, e.g. `b'\x00a'`), since that is what ends up in the JSON.
    package static func pythonValue(_ value: AnyValue) -> PyJSON {
        pythonValue(value, bytes: { .string(pythonBytesRepr($0)) })
    }

    /// As above, with a caller-chosen rendering of top-level and nested bytes values.
    package static func pythonValue(_ value: AnyValue, bytes renderBytes: ([UInt8]) -> PyJSON) -> PyJSON {
        switch value {
        case .string(let text): return .string(text)
        case .bool(let flag): return .bool(flag)
        case .int(let number): return .int(number)
        case .double(let number): return .double(number)
        case .bytes(let raw): return renderBytes(raw)
        case .array(let values): return .array(values.map { pythonValue($0, bytes: renderBytes) })
        case .kvlist(let pairs):
            var object = PyObject()
            for pair in pairs { object[pair.key] = pythonValue(pair.value, bytes: renderBytes) }
            return .object(object)
        case .empty: return .null
        }
    }

    /// `dump_span_attribute_value`: the JSON text MLflow keeps as an attribute value.
    package static func dump(_ value: AnyValue) -> String {
        PyJSONWriter.dump(pythonValue(value), ensureASCII: false)
    }

    /// `sanitize_attributes` for one value: when `value` is a JSON string whose content is
    /// itself JSON text of a string, object or array, keep the inner text.
    package static func sanitize(_ value: String) -> String {
        guard case .string(let inner)? = PyJSONParser.parse(value) else { return value }
        return holdsJSONStringObjectOrArray(inner) ? inner : value
    }

    /// The stored form of an OTLP attribute value: `sanitize(dump(value))`, without the round trip.
    /// Only a string can come back from `json.loads(dump(value))` as a string (bytes come back as
    /// `b'…'`, which is not JSON), and for a string it comes back unchanged.
    package static func storedValue(_ value: AnyValue) -> String {
        if case .string(let text) = value {
            return holdsJSONStringObjectOrArray(text) ? text : PyJSONWriter.dumpString(text)
        }
        return dump(value)
    }

    /// Whether `json.loads(text)` gives a str, dict or list.
    package static func holdsJSONStringObjectOrArray(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { holdsJSONStringObjectOrArray(utf8: $0) }
    }

    /// As above, for text given as (valid) UTF-8 bytes.
    package static func holdsJSONStringObjectOrArray(utf8 text: UnsafeBufferPointer<UInt8>) -> Bool {
        // Cheap rejection first: such JSON starts (after whitespace) with `"`, `{` or `[`.
        guard let first = text.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }),
              first == UInt8(ascii: "\"") || first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else { return false }
        switch PyJSONParser.kind(utf8: text) {
        case .string?, .object?, .array?: return true
        default: return false
        }
    }

    /// `_try_parse_json_string`: the decoded string when `value` is a JSON string, else `value`.
    package static func unwrapJSONString(_ value: String) -> String {
        if case .string(let inner)? = PyJSONParser.parse(value) { return inner }
        return value
    }

    /// `try_json_loads`: the parsed value, or the text itself as a string.
    package static func loadsOrString(_ value: String) -> PyJSON {
        PyJSONParser.parse(value) ?? .string(value)
    }

    /// Python's `repr(bytes)`: `b'…'` (or `b"…"` when the bytes hold `'` but no `"`), with `\t`,
    /// `\n`, `\r`, `\\`, the quote escaped and other bytes outside printable ASCII as `\xhh`.
    package static func pythonBytesRepr(_ bytes: [UInt8]) -> String {
        let quote: UInt8 = bytes.contains(UInt8(ascii: "'")) && !bytes.contains(UInt8(ascii: "\""))
            ? UInt8(ascii: "\"") : UInt8(ascii: "'")
        var out: [UInt8] = [UInt8(ascii: "b"), quote]
        let hex = Array("0123456789abcdef".utf8)
        for byte in bytes {
            switch byte {
            case quote, UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
            case UInt8(ascii: "\t"): out += Array("\\t".utf8)
            case UInt8(ascii: "\n"): out += Array("\\n".utf8)
            case UInt8(ascii: "\r"): out += Array("\\r".utf8)
            case 0x20..<0x7F: out.append(byte)
            default: out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        out.append(quote)
        return String(decoding: out, as: UTF8.self)
    }

    /// How MLflow turns a resource attribute into a tag value: strings as they are, anything else
    /// `json.dumps(value)` (default `ensure_ascii=True`). MLflow's own call fails on bytes; Stitch
    /// renders them as Python's repr instead of failing the batch.
    package static func tagValue(_ value: AnyValue) -> String {
        if case .string(let text) = value { return text }
        return PyJSONWriter.dump(pythonValue(value), ensureASCII: true)
    }
}

/// MLflow's validation of trace tag keys and values (`_validate_trace_tag`,
/// mlflow/utils/validation.py). Keys that fail are skipped (MLflow skips them too on the OTLP path).
package enum TraceTagRules {
    package static let maximumKeyLength = 250
    package static let maximumValueLength = 8000
    package static let maximumTraceNameLength = 4096

    /// The tag as MLflow would store it, or nil when MLflow would skip it.
    package static func validated(key: String, value: String) -> (key: String, value: String)? {
        guard isValidKey(key) else { return nil }
        return (key, String(value.unicodeScalars.prefix(maximumValueLength)))
    }

    /// `^[/\w.\- :]*$`, at most 250 characters, and unchanged by `posixpath.normpath` (no empty,
    /// `.` or `..` components, no leading or trailing `/`).
    package static func isValidKey(_ key: String) -> Bool {
        guard !key.isEmpty, key.unicodeScalars.count <= maximumKeyLength else { return false }
        for scalar in key.unicodeScalars {
            let allowed: Bool
            if scalar.isASCII {
                // The usual case, without a Unicode property lookup per character.
                let byte = UInt8(scalar.value)
                allowed = (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || "/.- :_".utf8.contains(byte)
            } else {
                allowed = scalar.properties.isAlphabetic || scalar.properties.numericType != nil
            }
            if !allowed { return false }
        }
        let components = key.split(separator: "/", omittingEmptySubsequences: false)
        if key.hasPrefix("/") || key.hasPrefix("..") { return false }
        for component in components where component.isEmpty || component == "." || component == ".." {
            return false
        }
        return true
    }
}

/// Trace metadata keys (mlflow/tracing/constant.py `TraceMetadataKey`).
package enum TraceMetadataKeys {
    package static let user = "mlflow.trace.user"
    package static let session = "mlflow.trace.session"
    package static let tokenUsage = "mlflow.trace.tokenUsage"
    package static let cost = "mlflow.trace.cost"
    /// Kept in `trace_info` columns and presented as metadata on read, as MLflow does.
    package static let promoted: Set<String> = [session, tokenUsage, cost]
}
