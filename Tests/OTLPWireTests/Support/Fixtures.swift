import Deflate
import Foundation
import OTLPWire
import StitchTestSupport

/// The captured requests (`Tests/Fixtures/mlflow-otlp`, located and checked by StitchTestSupport), with
/// the readers these tests need on top: decompressed bodies and the protobuf text dumps.
enum Fixtures {
    static var directory: URL { StitchTestSupport.Fixtures.directory }

    /// Every captured protobuf body (`*.pb`, `*.pb.gz`), by file name.
    static var bodyNames: [String] { StitchTestSupport.Fixtures.bodyNames }

    /// The (decompressed) body of `name`.
    static func body(_ name: String) throws -> [UInt8] {
        let url = directory.appendingPathComponent(name)
        guard name.hasSuffix(".gz") else { return Array(try Data(contentsOf: url)) }
        return try gunzip(url)
    }

    /// The protobuf text dump of `name` (`decoded/<name without .gz>.txt`).
    static func textDump(_ name: String) throws -> String {
        let base = name.hasSuffix(".gz") ? String(name.dropLast(3)) : name
        return try String(contentsOf: directory.appendingPathComponent("decoded/\(base).txt"), encoding: .utf8)
    }

    private static func gunzip(_ url: URL) throws -> [UInt8] {
        try Deflate.inflate(Array(Data(contentsOf: url)), format: .gzip, limit: 64 << 20)
    }
}

/// The spans of a protobuf text dump (`decoded/*.txt`), read independently of the code under test.
struct TextDumpSpan: Equatable {
    var traceID: [UInt8] = []
    var spanID: [UInt8] = []
    var parentSpanID: [UInt8] = []
    var name = ""
    var kind: Int32 = 0
    var startTimeUnixNano: UInt64 = 0
    var endTimeUnixNano: UInt64 = 0
    var flags: UInt32 = 0
    var statusCode: Int32 = 0
    var serviceName: String?
}

enum TextDump {
    static let kinds: [String: Int32] = [
        "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
        "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
    ]
    static let codes: [String: Int32] = ["STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2]

    /// Walks the dump line by line, tracking the path of open blocks.
    static func spans(_ text: String) -> [TextDumpSpan] {
        var path: [String] = []
        var spans: [TextDumpSpan] = []
        var serviceName: String?
        var pendingKey: String?
        for rawLine in text.split(separator: "\n") {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasSuffix("{") {
                let block = String(line.dropLast(2))
                path.append(block)
                if path == ["resource_spans"] { serviceName = nil }
                if path == ["resource_spans", "scope_spans", "spans"] {
                    spans.append(TextDumpSpan(serviceName: serviceName))
                }
                continue
            }
            if line == "}" {
                path.removeLast()
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let value = String(line[line.index(colon, offsetBy: 2)...])
            if path == ["resource_spans", "resource", "attributes"], key == "key" {
                pendingKey = unquote(value).map { String(decoding: $0, as: UTF8.self) }
            }
            if path == ["resource_spans", "resource", "attributes", "value"], key == "string_value",
               pendingKey == "service.name" {
                serviceName = unquote(value).map { String(decoding: $0, as: UTF8.self) }
            }
            if path == ["resource_spans", "scope_spans", "spans", "status"], key == "code" {
                spans[spans.count - 1].statusCode = codes[value] ?? -1
            }
            guard path == ["resource_spans", "scope_spans", "spans"] else { continue }
            switch key {
            case "trace_id": spans[spans.count - 1].traceID = unquote(value) ?? []
            case "span_id": spans[spans.count - 1].spanID = unquote(value) ?? []
            case "parent_span_id": spans[spans.count - 1].parentSpanID = unquote(value) ?? []
            case "name": spans[spans.count - 1].name = String(decoding: unquote(value) ?? [], as: UTF8.self)
            case "kind": spans[spans.count - 1].kind = kinds[value] ?? -1
            case "start_time_unix_nano": spans[spans.count - 1].startTimeUnixNano = UInt64(value) ?? 0
            case "end_time_unix_nano": spans[spans.count - 1].endTimeUnixNano = UInt64(value) ?? 0
            case "flags": spans[spans.count - 1].flags = UInt32(value) ?? 0
            default: break
            }
        }
        return spans
    }

    /// Undoes the C-style escaping of a quoted text-format string (\ooo octal, \n, \", \\ ...).
    static func unquote(_ quoted: String) -> [UInt8]? {
        let bytes = Array(quoted.utf8)
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\"") else { return nil }
        var out: [UInt8] = []
        var index = 1
        while index < bytes.count - 1 {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                index += 1
                continue
            }
            let next = bytes[index + 1]
            switch next {
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var value = 0
                var count = 0
                while count < 3, index + 1 + count < bytes.count - 1,
                      (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(bytes[index + 1 + count]) {
                    value = value * 8 + Int(bytes[index + 1 + count] - UInt8(ascii: "0"))
                    count += 1
                }
                out.append(UInt8(value))
                index += 1 + count
            case UInt8(ascii: "n"): out.append(0x0A); index += 2
            case UInt8(ascii: "r"): out.append(0x0D); index += 2
            case UInt8(ascii: "t"): out.append(0x09); index += 2
            default: out.append(next); index += 2
            }
        }
        return out
    }
}
