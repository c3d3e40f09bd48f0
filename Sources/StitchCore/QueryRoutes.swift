import Foundation
import Prometheus
import Receiver
import TraceModel

/// The non-OTLP routes on the receiver's port: health, Prometheus metrics and the query API.
///
/// - `GET /healthz` → 200 `ok` (in cluster mode followed by `member <host:port> self|up|down` lines)
/// - `GET /metrics` → Prometheus text
/// - `GET /api/v1/traces?experiment_id=&filter=&max_results=&page_token=` → `{"traces": […], "next_page_token": …}`
/// - `GET /api/v1/traces/{tr-…}` → MLflow's Trace JSON
/// - `GET /api/v1/traces/{tr-…}/links` → `{"trace_id", "calls": […], "called_by": […]}`: the traces it
///   called (MLflow AI Gateway traces) and the traces that called it, each with the calling span
package struct QueryRoutes: HTTPRouteHandler {
    let store: (any TraceStore)?
    let registry: PrometheusCollectorRegistry
    /// In cluster mode, the members as this instance sees them (listed by `/healthz`).
    let membership: ClusterMembership?

    /// `store` nil: no store destination is configured; the query API answers 404.
    package init(store: (any TraceStore)?, registry: PrometheusCollectorRegistry, membership: ClusterMembership? = nil) {
        self.store = store
        self.registry = registry
        self.membership = membership
    }

    static let maxResultsLimit = 1000

    package func handle(_ request: HTTPRequestSummary) async -> HTTPResponseValue? {
        let isQuery = request.path == "/api/v1/traces" || request.path.hasPrefix("/api/v1/traces/")
        guard request.path == "/healthz" || request.path == "/metrics" || isQuery else { return nil }
        guard request.method == "GET" || request.method == "HEAD" else {
            return HTTPResponseValue(status: 405, contentType: "application/json",
                                     body: Self.errorBody("METHOD_NOT_ALLOWED", "\(request.method) is not allowed on \(request.path); use GET"),
                                     headers: [("Allow", "GET")])
        }
        switch request.path {
        case "/healthz":
            // The first line stays `ok`; a cluster member then lists the members as it sees them.
            let members = membership?.members.map { "member \($0.name) \($0.state.rawValue)\n" }.joined() ?? ""
            return .text(200, "ok\n" + members)
        case "/metrics":
            return HTTPResponseValue(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                     body: registry.emitToBuffer())
        default:
            guard let store else {
                return .json(404, Self.errorBody("RESOURCE_DOES_NOT_EXIST", "no store destination is configured; traces are only forwarded"))
            }
            if request.path == "/api/v1/traces" { return await search(request.query, store: store) }
            let rest = request.path.dropFirst("/api/v1/traces/".count)
            if rest.hasSuffix("/links") { return await answer(String(rest.dropLast("/links".count)), store: store, body: Self.linksBody) }
            return await answer(String(rest), store: store) { Array($0.mlflowJSON()) }
        }
    }

    private func search(_ parameters: [String: String], store: any TraceStore) async -> HTTPResponseValue {
        var query = TraceQuery()
        if let ids = parameters["experiment_id"] ?? parameters["experiment_ids"], !ids.isEmpty {
            query.experimentIDs = ids.split(separator: ",").map(String.init)
        }
        if let filter = parameters["filter"], !filter.isEmpty { query.filter = filter }
        if let text = parameters["max_results"], !text.isEmpty {
            guard let value = Int(text), value > 0 else {
                return .json(400, Self.errorBody("INVALID_PARAMETER_VALUE", "max_results must be a positive integer, got '\(text)'"))
            }
            guard value <= Self.maxResultsLimit else {
                return .json(400, Self.errorBody("INVALID_PARAMETER_VALUE", "max_results must be at most \(Self.maxResultsLimit), got \(value)"))
            }
            query.maxResults = value
        }
        if let token = parameters["page_token"], !token.isEmpty { query.pageToken = token }
        do {
            let page = try await store.searchTraces(query)
            return .json(200, Array(page.mlflowJSON()))
        } catch let error as FilterError {
            return .json(400, Self.errorBody("INVALID_PARAMETER_VALUE", error.message))
        } catch let error as StoreError {
            return .json(400, Self.errorBody("INVALID_PARAMETER_VALUE", error.message))
        } catch {
            return .json(500, Self.errorBody("INTERNAL_ERROR", "\(error)"))
        }
    }

    /// The stored trace `id` as `body` renders it; 404 when it is not stored.
    private func answer(_ id: String, store: any TraceStore, body: (StoredTrace) -> [UInt8]) async -> HTTPResponseValue {
        do {
            guard let trace = try await store.storedTrace(id: id) else {
                return .json(404, Self.errorBody("RESOURCE_DOES_NOT_EXIST", "trace '\(id)' not found"))
            }
            return .json(200, body(trace))
        } catch {
            return .json(500, Self.errorBody("INTERNAL_ERROR", "\(error)"))
        }
    }

    /// The body of `/links`: `calls` name the called trace, `called_by` the calling one; both name
    /// the calling span and, when known, the gateway endpoint.
    static func linksBody(_ trace: StoredTrace) -> [UInt8] {
        func entry(_ link: TraceLink, trace: String) -> [String: Any] {
            var object: [String: Any] = ["trace_id": trace, "span_id": link.spanID]
            if let endpoint = link.endpointName { object["endpoint"] = endpoint }
            return object
        }
        let object: [String: Any] = [
            "trace_id": trace.info.requestID,
            "calls": trace.calls.map { entry($0, trace: $0.linkedRequestID) },
            "called_by": trace.calledBy.map { entry($0, trace: $0.requestID) },
        ]
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    /// MLflow's REST error shape.
    static func errorBody(_ code: String, _ message: String) -> [UInt8] {
        let object: [String: String] = ["error_code": code, "message": message]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Array(data)
    }
}
