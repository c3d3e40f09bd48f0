/// What a span says about another trace it called. MLflow's AI Gateway, called with a
/// `traceparent`, adds a `gateway/<endpoint>` span to the caller's trace whose
/// `mlflow.gateway.linkedTraceId` names the gateway's own trace (mlflow.md, "MLflow's AI Gateway
/// and distributed tracing").
package struct GatewayLink: Sendable, Equatable {
    /// The called trace's MLflow id (`tr-…`).
    package var linkedRequestID: String
    /// The gateway endpoint's name (`endpoint_name`), when the span has one.
    package var endpointName: String?

    /// Longest stored id: `trace_info.request_id` is VARCHAR(50).
    package static let maximumIDLength = 50
    /// Longest stored endpoint name (longer names are cut, as MLflow cuts model names).
    package static let maximumEndpointLength = 500

    /// From the span's stored attribute texts (JSON-encoded, as MLflow stores them); nil without a
    /// usable linked trace id (empty, or longer than a trace id can be).
    package init?(linkedTraceID: String?, endpointName: String?) {
        guard let raw = linkedTraceID else { return nil }
        let id = MLflowAttributes.unwrapJSONString(raw)
        guard !id.isEmpty, id.unicodeScalars.count <= Self.maximumIDLength else { return nil }
        linkedRequestID = id
        self.endpointName = endpointName.map {
            String(MLflowAttributes.unwrapJSONString($0).unicodeScalars.prefix(Self.maximumEndpointLength))
        }.flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// One row of `stitch_trace_links`: span `spanID` of trace `requestID` called trace
/// `linkedRequestID`. Written with the calling trace, so it is there whichever of the two traces
/// is stored first, and read from either side.
package struct TraceLink: Sendable, Equatable, Hashable {
    /// The calling trace (the agent's).
    package var requestID: String
    /// The calling span (the `gateway/<endpoint>` span), 16 hex digits.
    package var spanID: String
    /// The called trace (the gateway's own).
    package var linkedRequestID: String
    package var endpointName: String?

    package init(requestID: String, spanID: String, linkedRequestID: String, endpointName: String?) {
        self.requestID = requestID
        self.spanID = spanID
        self.linkedRequestID = linkedRequestID
        self.endpointName = endpointName
    }

    /// The table's columns, in binding order.
    package static let columns = ["request_id", "span_id", "linked_request_id", "endpoint_name"]

    /// A span sent again replaces its link, as it replaces its `spans` row.
    package static let upsert = "ON CONFLICT (request_id, span_id) DO UPDATE SET "
        + "linked_request_id = excluded.linked_request_id, endpoint_name = excluded.endpoint_name"

    /// Every link of trace `id`, both ways (`$1`/`?` is the id, twice), calling trace first.
    package static func selectBothWays(placeholder first: String, _ second: String) -> String {
        """
        SELECT request_id, span_id, linked_request_id, endpoint_name FROM stitch_trace_links
        WHERE request_id = \(first) OR linked_request_id = \(second)
        ORDER BY request_id, span_id
        """
    }
}

extension PreparedTrace {
    /// The links the trace's spans carry.
    package var links: [TraceLink] {
        spans.compactMap { span in
            span.facts.gatewayLink.map {
                TraceLink(requestID: requestID, spanID: span.row.spanID, linkedRequestID: $0.linkedRequestID,
                          endpointName: $0.endpointName)
            }
        }
    }
}

extension StoredTrace {
    /// The traces this one called, one per calling span.
    package var calls: [TraceLink] { links.filter { $0.requestID == info.requestID } }
    /// The traces (and their spans) that called this one.
    package var calledBy: [TraceLink] { links.filter { $0.linkedRequestID == info.requestID && $0.requestID != info.requestID } }
}
