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
    package static func tree(_ trace: StoredTrace) -> String {
        let info = trace.info
        var out = "\(info.requestID)  experiment \(info.experimentID)  \(info.status)  "
        out += "\(info.executionTimeMs.map(milliseconds) ?? "-")  started \(timestamp(info.timestampMs))\n"
        if let completeness = info.tags["stitch.completeness"] { out += "completeness: \(completeness)" }
        if let services = info.tags["stitch.services"] ?? info.tags["service.name"] { out += "   services: \(services)" }
        out += "\n\n"

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
        var rows: [[String]] = [["SPAN", "TYPE", "SERVICE", "DURATION", "STATUS"]]
        func visit(_ span: StoredSpan, depth: Int, seen: inout Set<String>) {
            guard seen.insert(span.spanID).inserted else { return }  // a cycle in bad data must not loop
            var label = String(repeating: "  ", count: depth) + span.name
            if depth == 0, let parent = span.parentSpanID, !ids.contains(parent) {
                label += "  [parent \(parent) missing]"
            }
            let duration = Double(span.endTimeUnixNano - span.startTimeUnixNano) / 1e6
            rows.append([label, span.type ?? "-", span.serviceName ?? "-", String(format: "%.2f ms", duration), span.status])
            for child in children[span.spanID] ?? [] { visit(child, depth: depth + 1, seen: &seen) }
        }
        var seen = Set<String>()
        for span in tops { visit(span, depth: 0, seen: &seen) }
        // Spans only reachable through a cycle.
        for span in trace.spans where !seen.contains(span.spanID) { visit(span, depth: 0, seen: &seen) }
        return out + columns(rows)
    }

    static func columns(_ rows: [[String]]) -> String {
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
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
