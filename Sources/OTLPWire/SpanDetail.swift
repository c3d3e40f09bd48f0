/// Fully decoded span content, produced on demand from a `SpanRecord`'s bytes (the store and the
/// JSON paths need it; the hot path does not).
package indirect enum AnyValue: Sendable, Equatable {
    case string(String)
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case bytes([UInt8])
    case array([AnyValue])
    case kvlist([KeyValue])
    /// An `AnyValue` with no field set.
    case empty
}

package struct KeyValue: Sendable, Equatable {
    package var key: String
    package var value: AnyValue
    package init(key: String, value: AnyValue) {
        self.key = key
        self.value = value
    }
}

package struct SpanEvent: Sendable, Equatable {
    package var timeUnixNano: UInt64
    package var name: String
    package var attributes: [KeyValue]
    package var droppedAttributesCount: UInt32
    package init(timeUnixNano: UInt64, name: String, attributes: [KeyValue], droppedAttributesCount: UInt32) {
        self.timeUnixNano = timeUnixNano
        self.name = name
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
    }
}

package struct SpanLink: Sendable, Equatable {
    /// Raw bytes as received (normally 16 / 8 bytes).
    package var traceID: [UInt8]
    package var spanID: [UInt8]
    package var traceState: String
    package var attributes: [KeyValue]
    package var droppedAttributesCount: UInt32
    package var flags: UInt32
    package init(traceID: [UInt8], spanID: [UInt8], traceState: String, attributes: [KeyValue], droppedAttributesCount: UInt32, flags: UInt32) {
        self.traceID = traceID
        self.spanID = spanID
        self.traceState = traceState
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
        self.flags = flags
    }
}

package struct SpanDetail: Sendable, Equatable {
    package var traceID: TraceID
    package var spanID: SpanID
    package var parentSpanID: SpanID
    package var traceState: String
    package var name: String
    package var kind: Int32
    package var startTimeUnixNano: UInt64
    package var endTimeUnixNano: UInt64
    package var attributes: [KeyValue]
    package var droppedAttributesCount: UInt32
    package var events: [SpanEvent]
    package var droppedEventsCount: UInt32
    package var links: [SpanLink]
    package var droppedLinksCount: UInt32
    package var statusCode: Int32
    package var statusMessage: String
    package var flags: UInt32

    package init(
        traceID: TraceID, spanID: SpanID, parentSpanID: SpanID, traceState: String = "", name: String,
        kind: Int32, startTimeUnixNano: UInt64, endTimeUnixNano: UInt64, attributes: [KeyValue] = [],
        droppedAttributesCount: UInt32 = 0, events: [SpanEvent] = [], droppedEventsCount: UInt32 = 0,
        links: [SpanLink] = [], droppedLinksCount: UInt32 = 0, statusCode: Int32 = 0,
        statusMessage: String = "", flags: UInt32 = 0
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.traceState = traceState
        self.name = name
        self.kind = kind
        self.startTimeUnixNano = startTimeUnixNano
        self.endTimeUnixNano = endTimeUnixNano
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
        self.events = events
        self.droppedEventsCount = droppedEventsCount
        self.links = links
        self.droppedLinksCount = droppedLinksCount
        self.statusCode = statusCode
        self.statusMessage = statusMessage
        self.flags = flags
    }

    package func attribute(_ key: String) -> AnyValue? {
        attributes.first { $0.key == key }?.value
    }
}

/// A decoded `Resource`.
package struct ResourceDetail: Sendable, Equatable {
    package var attributes: [KeyValue]
    package var droppedAttributesCount: UInt32
    package init(attributes: [KeyValue], droppedAttributesCount: UInt32 = 0) {
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
    }
}

/// A decoded `InstrumentationScope`.
package struct ScopeDetail: Sendable, Equatable {
    package var name: String
    package var version: String
    package var attributes: [KeyValue]
    package var droppedAttributesCount: UInt32
    package init(name: String, version: String, attributes: [KeyValue] = [], droppedAttributesCount: UInt32 = 0) {
        self.name = name
        self.version = version
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
    }
}
