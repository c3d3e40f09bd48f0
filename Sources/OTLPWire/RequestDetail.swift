/// A fully decoded `ResourceSpans`: what `OTLPTraceEncoder.encodeRequest(resourceSpans:)` writes and
/// `OTLPTraceDecoder.decodeDetail(_:)` reads.
package struct ResourceSpansDetail: Sendable, Equatable {
    /// nil when the `ResourceSpans` had no `resource` field.
    package var resource: ResourceDetail?
    package var scopeSpans: [ScopeSpansDetail]
    package var schemaURL: String

    package init(resource: ResourceDetail?, scopeSpans: [ScopeSpansDetail], schemaURL: String = "") {
        self.resource = resource
        self.scopeSpans = scopeSpans
        self.schemaURL = schemaURL
    }
}

/// A fully decoded `ScopeSpans`.
package struct ScopeSpansDetail: Sendable, Equatable {
    /// nil when the `ScopeSpans` had no `scope` field.
    package var scope: ScopeDetail?
    package var spans: [SpanDetail]
    package var schemaURL: String

    package init(scope: ScopeDetail?, spans: [SpanDetail], schemaURL: String = "") {
        self.scope = scope
        self.spans = spans
        self.schemaURL = schemaURL
    }
}
