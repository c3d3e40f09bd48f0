import Foundation
import SQLiteStore
import TraceModel

/// Text views of stored traces for the command line.
package enum TraceRendering {
    /// One row per trace: id, start time, state, duration, completeness, services, request preview.
    package static func table(_ traces: [TraceInfoRecord]) -> String {
        guard !traces.isEmpty else { return "no traces\n" }
        var rows: [[String]] = [["TRACE ID", "STARTED (UTC)", "STATE", "DURATION", "COMPLETENESS", "SERVICES", "REQUEST"]]
        for info in traces {
            rows.append([
                info.requestID,
                timestamp(info.timestampMs),
                info.status,
                info.executionTimeMs.map(milliseconds) ?? "-",
                info.tags["stitch.completeness"] ?? "-",
                info.tags["stitch.services"] ?? info.tags["service.name"] ?? "-",
                preview(info.requestPreview, limit: 40),
            ])
        }
        return columns(rows)
    }

    /// The span tree: indentation by parent; per span name, type, service, duration, status.
    /// Spans whose parent is not in the trace are shown at the top level with the missing id.
    ///
    /// Links (`stitch_trace_links`) are listed under the header, and a span that called another
    /// trace (MLflow's AI Gateway span) names it in a LINK column. `linked` holds called traces
    /// read from the store, by id: their spans are shown under the span that called them, marked
    /// `»` and with their trace in the LINK column. A called trace asked for but not in `linked`
    /// is said to be missing from the store.
    package static func tree(_ trace: StoredTrace, linked: [String: StoredTrace]? = nil) -> String {
        let info = trace.info
        var out = "\(info.requestID)  experiment \(info.experimentID)  \(info.status)  "
        out += "\(info.executionTimeMs.map(milliseconds) ?? "-")  started \(timestamp(info.timestampMs))\n"
        if let completeness = info.tags["stitch.completeness"] { out += "completeness: \(completeness)" }
        if let services = info.tags["stitch.services"] ?? info.tags["service.name"] { out += "   services: \(services)" }
        out += "\n"
        for link in trace.calls {
            out += "calls:     \(link.linkedRequestID)  (\(endpoint(link))from span \(link.spanID))\n"
        }
        for link in trace.calledBy {
            out += "called by: \(link.requestID)  (\(endpoint(link))span \(link.spanID))\n"
        }
        out += "\n"

        let callsBySpan = Dictionary(grouping: trace.calls, by: \.spanID)
        let withLinks = !callsBySpan.isEmpty
        var rows: [[String]] = [["SPAN", "TYPE", "SERVICE", "DURATION", "STATUS"] + (withLinks ? ["LINK"] : [])]
        func row(_ span: StoredSpan, label: String, link: String) {
            let duration = Double(span.endTimeUnixNano - span.startTimeUnixNano) / 1e6
            rows.append([label, span.type ?? "-", span.serviceName ?? "-", String(format: "%.2f ms", duration), span.status]
                        + (withLinks ? [link] : []))
        }
        /// `after`: called for each span of `trace` once its subtree is shown (own spans only).
        func spans(of trace: StoredTrace, depth: Int, marker: String, after: (StoredSpan, Int) -> Void) {
            let ids = Set(trace.spans.map(\.spanID))
            var children: [String: [StoredSpan]] = [:]
            var tops: [StoredSpan] = []
            for span in trace.spans {
                if let parent = span.parentSpanID, ids.contains(parent) {
                    children[parent, default: []].append(span)
                } else {
                    tops.append(span)
                }
            }
            var seen = Set<String>()
            let base = depth
            func visit(_ span: StoredSpan, depth: Int) {
                guard seen.insert(span.spanID).inserted else { return }  // a cycle in bad data must not loop
                var label = String(repeating: "  ", count: depth) + marker + span.name
                if depth == base, let parent = span.parentSpanID, !ids.contains(parent) {
                    label += "  [parent \(parent) missing]"
                }
                let calls = marker.isEmpty ? callsBySpan[span.spanID] ?? [] : []
                row(span, label: label, link: marker.isEmpty
                    ? calls.map { "calls \($0.linkedRequestID)" }.joined(separator: ", ") : "in \(trace.info.requestID)")
                for child in children[span.spanID] ?? [] { visit(child, depth: depth + 1) }
                if marker.isEmpty { after(span, depth) }
            }
            for span in tops { visit(span, depth: depth) }
            // Spans only reachable through a cycle.
            for span in trace.spans where !seen.contains(span.spanID) { visit(span, depth: depth) }
        }
        spans(of: trace, depth: 0, marker: "") { span, depth in
            guard let linked, let calls = callsBySpan[span.spanID] else { return }
            for call in calls {
                if let called = linked[call.linkedRequestID] {
                    spans(of: called, depth: depth + 1, marker: "» ", after: { _, _ in })
                } else {
                    rows.append([String(repeating: "  ", count: depth + 1) + "» (not in the store)", "-", "-", "-", "-",
                                 "in \(call.linkedRequestID)"])
                }
            }
        }
        return out + columns(rows)
    }

    private static func endpoint(_ link: TraceLink) -> String {
        link.endpointName.map { "gateway endpoint \($0), " } ?? ""
    }

    static func columns(_ rows: [[String]]) -> String {
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingTrailingSpaces
        }.joined(separator: "\n") + "\n"
    }

    static func timestamp(_ ms: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func milliseconds(_ ms: Int64) -> String { "\(ms) ms" }

    static func preview(_ text: String?, limit: Int) -> String {
        guard let text, !text.isEmpty else { return "-" }
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > limit ? String(flat.prefix(limit - 1)) + "…" : flat
    }
}

extension String {
    fileprivate var trimmingTrailingSpaces: String {
        guard let last = lastIndex(where: { $0 != " " }) else { return "" }
        return String(self[...last])
    }
}
