import OTLPWire

// The product reads OTLP/JSON (JSONToProtobuf) but never writes it: the writer of protobuf → JSON is
// test support, the oracle of the round-trip tests and the load generator's JSON traffic.
extension OTLPJSON {
    /// Converts a protobuf `ExportTraceServiceRequest` to OTLP/JSON: lowerCamelCase keys, ids as lowercase
    /// hex (as received, whatever their length), enums as integers, 64-bit integers as decimal strings,
    /// default values left out. `Resource.entity_refs` and unknown fields are not carried over.
    package static func jsonFromProtobuf(_ bytes: [UInt8]) throws(WireError) -> [UInt8] {
        let request = try OTLPTraceDecoder.rawDetail(bytes)
        var writer = JSONWriter()
        writer.beginObject()
        if !request.isEmpty {
            writer.key("resourceSpans")
            writer.beginArray()
            for resourceSpans in request {
                writer.writeResourceSpans(resourceSpans)
            }
            writer.endArray()
        }
        writer.endObject()
        return writer.bytes
    }
}

extension JSONWriter {
    mutating func writeResourceSpans(_ entry: RawResourceSpans) {
        beginObject()
        if let resource = entry.resource {
            key("resource")
            beginObject()
            writeAttributes(resource.attributes, dropped: resource.droppedAttributesCount)
            endObject()
        }
        if !entry.scopeSpans.isEmpty {
            key("scopeSpans")
            beginArray()
            for scopeSpans in entry.scopeSpans {
                writeScopeSpans(scopeSpans)
            }
            endArray()
        }
        field("schemaUrl", entry.schemaURL)
        endObject()
    }

    mutating func writeScopeSpans(_ entry: RawScopeSpans) {
        beginObject()
        if let scope = entry.scope {
            key("scope")
            beginObject()
            field("name", scope.name)
            field("version", scope.version)
            writeAttributes(scope.attributes, dropped: scope.droppedAttributesCount)
            endObject()
        }
        if !entry.spans.isEmpty {
            key("spans")
            beginArray()
            for span in entry.spans {
                writeSpan(span)
            }
            endArray()
        }
        field("schemaUrl", entry.schemaURL)
        endObject()
    }

    mutating func writeSpan(_ raw: RawSpanDetail) {
        let span = raw.detail
        beginObject()
        field("traceId", HexCoding.hex(raw.traceID))
        field("spanId", HexCoding.hex(raw.spanID))
        field("traceState", span.traceState)
        field("parentSpanId", HexCoding.hex(raw.parentSpanID))
        number("flags", UInt64(span.flags))
        field("name", span.name)
        number("kind", span.kind)
        uint64String("startTimeUnixNano", span.startTimeUnixNano)
        uint64String("endTimeUnixNano", span.endTimeUnixNano)
        writeAttributes(span.attributes, dropped: span.droppedAttributesCount)
        if !span.events.isEmpty {
            key("events")
            beginArray()
            for event in span.events {
                beginObject()
                uint64String("timeUnixNano", event.timeUnixNano)
                field("name", event.name)
                writeAttributes(event.attributes, dropped: event.droppedAttributesCount)
                endObject()
            }
            endArray()
        }
        number("droppedEventsCount", UInt64(span.droppedEventsCount))
        if !span.links.isEmpty {
            key("links")
            beginArray()
            for link in span.links {
                beginObject()
                field("traceId", HexCoding.hex(link.traceID))
                field("spanId", HexCoding.hex(link.spanID))
                field("traceState", link.traceState)
                writeAttributes(link.attributes, dropped: link.droppedAttributesCount)
                number("flags", UInt64(link.flags))
                endObject()
            }
            endArray()
        }
        number("droppedLinksCount", UInt64(span.droppedLinksCount))
        key("status")
        beginObject()
        field("message", span.statusMessage)
        number("code", span.statusCode)
        endObject()
        endObject()
    }

    mutating func writeAttributes(_ attributes: [KeyValue], dropped: UInt32) {
        if !attributes.isEmpty {
            key("attributes")
            writeKeyValues(attributes)
        }
        number("droppedAttributesCount", UInt64(dropped))
    }

    mutating func writeKeyValues(_ pairs: [KeyValue]) {
        beginArray()
        for pair in pairs {
            beginObject()
            key("key")
            string(pair.key)
            key("value")
            writeAnyValue(pair.value)
            endObject()
        }
        endArray()
    }

    mutating func writeAnyValue(_ value: AnyValue) {
        beginObject()
        switch value {
        case .string(let text):
            key("stringValue")
            string(text)
        case .bool(let bool):
            key("boolValue")
            raw(bool ? "true" : "false")
        case .int(let int):
            key("intValue")
            string(String(int))
        case .double(let double):
            key("doubleValue")
            if double.isNaN {
                string("NaN")
            } else if double.isInfinite {
                string(double < 0 ? "-Infinity" : "Infinity")
            } else {
                raw(String(double))
            }
        case .bytes(let bytes):
            key("bytesValue")
            string(Base64.encode(bytes))
        case .array(let items):
            key("arrayValue")
            beginObject()
            key("values")
            beginArray()
            for item in items {
                writeAnyValue(item)
            }
            endArray()
            endObject()
        case .kvlist(let pairs):
            key("kvlistValue")
            beginObject()
            key("values")
            writeKeyValues(pairs)
            endObject()
        case .empty:
            break
        }
        endObject()
    }

    // MARK: proto3 JSON: fields equal to their default are left out.

    mutating func field(_ name: String, _ value: String) {
        guard !value.isEmpty else { return }
        key(name)
        string(value)
    }

    mutating func number(_ name: String, _ value: some BinaryInteger) {
        guard value != 0 else { return }
        key(name)
        raw(String(value))
    }

    /// 64-bit integers are strings in proto3 JSON (JavaScript numbers lose precision above 2^53).
    mutating func uint64String(_ name: String, _ value: UInt64) {
        guard value != 0 else { return }
        key(name)
        string(String(value))
    }
}
