/// Field numbers of the OTLP trace schema (opentelemetry-proto v1.x, checked against the descriptors of
/// opentelemetry-proto 1.45.2; see proto/ for the schema files) and of `google.rpc.Status`.
enum Field {
    /// `collector.trace.v1.ExportTraceServiceRequest`
    enum Request {
        static let resourceSpans: UInt32 = 1
    }

    /// `collector.trace.v1.ExportTraceServiceResponse` / `ExportTracePartialSuccess`
    enum Response {
        static let partialSuccess: UInt32 = 1
        static let rejectedSpans: UInt32 = 1
        static let errorMessage: UInt32 = 2
    }

    /// `trace.v1.ResourceSpans`
    enum ResourceSpans {
        static let resource: UInt32 = 1
        static let scopeSpans: UInt32 = 2
        static let schemaURL: UInt32 = 3
    }

    /// `trace.v1.ScopeSpans`
    enum ScopeSpans {
        static let scope: UInt32 = 1
        static let spans: UInt32 = 2
        static let schemaURL: UInt32 = 3
    }

    /// `trace.v1.Span`
    enum Span {
        static let traceID: UInt32 = 1
        static let spanID: UInt32 = 2
        static let traceState: UInt32 = 3
        static let parentSpanID: UInt32 = 4
        static let name: UInt32 = 5
        static let kind: UInt32 = 6
        static let startTimeUnixNano: UInt32 = 7
        static let endTimeUnixNano: UInt32 = 8
        static let attributes: UInt32 = 9
        static let droppedAttributesCount: UInt32 = 10
        static let events: UInt32 = 11
        static let droppedEventsCount: UInt32 = 12
        static let links: UInt32 = 13
        static let droppedLinksCount: UInt32 = 14
        static let status: UInt32 = 15
        static let flags: UInt32 = 16
    }

    /// `trace.v1.Status`
    enum Status {
        static let message: UInt32 = 2
        static let code: UInt32 = 3
    }

    /// `trace.v1.Span.Event`
    enum Event {
        static let timeUnixNano: UInt32 = 1
        static let name: UInt32 = 2
        static let attributes: UInt32 = 3
        static let droppedAttributesCount: UInt32 = 4
    }

    /// `trace.v1.Span.Link`
    enum Link {
        static let traceID: UInt32 = 1
        static let spanID: UInt32 = 2
        static let traceState: UInt32 = 3
        static let attributes: UInt32 = 4
        static let droppedAttributesCount: UInt32 = 5
        static let flags: UInt32 = 6
    }

    /// `resource.v1.Resource` (field 3, `entity_refs`, is kept only as bytes).
    enum Resource {
        static let attributes: UInt32 = 1
        static let droppedAttributesCount: UInt32 = 2
        static let entityRefs: UInt32 = 3
    }

    /// `common.v1.EntityRef` (only the OTLP/JSON converter writes it; readers keep it as bytes).
    enum EntityRef {
        static let schemaURL: UInt32 = 1
        static let type: UInt32 = 2
        static let idKeys: UInt32 = 3
        static let descriptionKeys: UInt32 = 4
    }

    /// `common.v1.InstrumentationScope`
    enum Scope {
        static let name: UInt32 = 1
        static let version: UInt32 = 2
        static let attributes: UInt32 = 3
        static let droppedAttributesCount: UInt32 = 4
    }

    /// `common.v1.KeyValue` (field 3, `key_strindex`, is for profiles' dictionaries; not used in traces).
    enum KeyValue {
        static let key: UInt32 = 1
        static let value: UInt32 = 2
    }

    /// `common.v1.AnyValue`, a oneof. Field 8, `string_value_strindex`, refers to a profiles dictionary
    /// that trace requests do not carry; it is read as a value this model cannot represent (`.empty`).
    enum AnyValue {
        static let stringValue: UInt32 = 1
        static let boolValue: UInt32 = 2
        static let intValue: UInt32 = 3
        static let doubleValue: UInt32 = 4
        static let arrayValue: UInt32 = 5
        static let kvlistValue: UInt32 = 6
        static let bytesValue: UInt32 = 7
        static let stringValueStrindex: UInt32 = 8
    }

    /// `common.v1.ArrayValue` and `common.v1.KeyValueList`
    enum List {
        static let values: UInt32 = 1
    }

    /// `google.rpc.Status`
    enum RPCStatus {
        static let code: UInt32 = 1
        static let message: UInt32 = 2
        static let details: UInt32 = 3
    }

    /// `google.protobuf.Any`
    enum AnyMessage {
        static let typeURL: UInt32 = 1
        static let value: UInt32 = 2
    }

    /// `google.rpc.RetryInfo` and its `google.protobuf.Duration`
    enum RetryInfo {
        static let retryDelay: UInt32 = 1
        static let seconds: UInt32 = 1
    }

    /// `grpc.health.v1.HealthCheckRequest` / `HealthCheckResponse`
    enum Health {
        static let service: UInt32 = 1
        static let status: UInt32 = 1
    }
}
