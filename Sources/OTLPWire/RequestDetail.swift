/// A fully decoded `ResourceSpans`: what `OTLPTraceEncoder.encodeRequest(resourceSpans:)` writes and
/// `OTLPTraceDecoder.decodeDetail(_:)` reads.
public struct ResourceSpansDetail: Sendable, Equatable {
    /// nil when the `ResourceSpans` had no `resource` field.
    public var resource: ResourceDetail?
    public var scopeSpans: [ScopeSpansDetail]
    public var schemaURL: String

    public init(resource: ResourceDetail?, scopeSpans: [ScopeSpansDetail], schemaURL: String = "") {
        self.resource = resource
        self.scopeSpans = scopeSpans
        self.schemaURL = schemaURL
    }
}

/// A fully decoded `ScopeSpans`.
public struct ScopeSpansDetail: Sendable, Equatable {
    /// nil when the `ScopeSpans` had no `scope` field.
    public var scope: ScopeDetail?
    public var spans: [SpanDetail]
    public var schemaURL: String

    public init(scope: ScopeDetail?, spans: [SpanDetail], schemaURL: String = "") {
        self.scope = scope
        self.spans = spans
        self.schemaURL = schemaURL
    }
}
