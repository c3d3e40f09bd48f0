/// Fully decoded span content, produced on demand from a `SpanRecord`'s bytes (the store and the
/// JSON paths need it; the hot path does not).
public indirect enum AnyValue: Sendable, Equatable {
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

public struct KeyValue: Sendable, Equatable {
    public var key: String
    public var value: AnyValue
    public init(key: String, value: AnyValue) {
        self.key = key
        self.value = value
    }
}

public struct SpanEvent: Sendable, Equatable {
    public var timeUnixNano: UInt64
    public var name: String
    public var attributes: [KeyValue]
    public var droppedAttributesCount: UInt32
    public init(timeUnixNano: UInt64, name: String, attributes: [KeyValue], droppedAttributesCount: UInt32) {
        self.timeUnixNano = timeUnixNano
        self.name = name
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
    }
}

public struct SpanLink: Sendable, Equatable {
    /// Raw bytes as received (normally 16 / 8 bytes).
    public var traceID: [UInt8]
    public var spanID: [UInt8]
    public var traceState: String
    public var attributes: [KeyValue]
    public var droppedAttributesCount: UInt32
    public var flags: UInt32
    public init(traceID: [UInt8], spanID: [UInt8], traceState: String, attributes: [KeyValue], droppedAttributesCount: UInt32, flags: UInt32) {
        self.traceID = traceID
        self.spanID = spanID
        self.traceState = traceState
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
        self.flags = flags
    }
}

public struct SpanDetail: Sendable, Equatable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var parentSpanID: SpanID
    public var traceState: String
    public var name: String
    public var kind: Int32
    public var startTimeUnixNano: UInt64
    public var endTimeUnixNano: UInt64
    public var attributes: [KeyValue]
    public var droppedAttributesCount: UInt32
    public var events: [SpanEvent]
    public var droppedEventsCount: UInt32
    public var links: [SpanLink]
    public var droppedLinksCount: UInt32
    public var statusCode: Int32
    public var statusMessage: String
    public var flags: UInt32

    public init(
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

    public func attribute(_ key: String) -> AnyValue? {
        attributes.first { $0.key == key }?.value
    }
}

/// A decoded `Resource`.
public struct ResourceDetail: Sendable, Equatable {
    public var attributes: [KeyValue]
    public var droppedAttributesCount: UInt32
    public init(attributes: [KeyValue], droppedAttributesCount: UInt32 = 0) {
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
    }
}

/// A decoded `InstrumentationScope`.
public struct ScopeDetail: Sendable, Equatable {
    public var name: String
    public var version: String
    public var attributes: [KeyValue]
    public var droppedAttributesCount: UInt32
    public init(name: String, version: String, attributes: [KeyValue] = [], droppedAttributesCount: UInt32 = 0) {
        self.name = name
        self.version = version
        self.attributes = attributes
        self.droppedAttributesCount = droppedAttributesCount
    }
}
