/// Parsing of the human forms used in configuration: durations (`500ms`, `2s`, `10m`, `1h`) and
/// byte sizes (`64MiB`, `1GiB`, `512KiB`, `1000`, also `MB`/`KB`/`GB` as powers of 1000), each checked
/// against the range its option accepts.
///
/// Numbers are read as `Double` and compared with the range before they become a `Duration` or an
/// `Int`, so no text, however large, negative or odd (`1e308`, `nan`, `99999999999999h`), can overflow
/// a conversion: it is a problem with a message, never a crash.
package enum ConfigValues {
    /// Why a value was not accepted (the reason shown after the key path).
    package struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        package var reason: String
        package var description: String { reason }
    }

    private static let durationUnits: [(suffix: String, seconds: Double)] = [
        ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400),
    ]

    private static let sizeUnits: [(suffix: String, factor: Double)] = [
        ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024), ("TiB", 1024 * 1024 * 1024 * 1024),
        ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("B", 1),
    ]

    /// The number of seconds `text` says (any sign, any magnitude), or nil if it is not a duration.
    static func seconds(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        for (suffix, seconds) in durationUnits where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            // "ms" also ends in "s": only accept when what remains is a plain number.
            guard let value = plainNumber(number) else { continue }
            return value * seconds
        }
        return nil
    }

    /// The number of bytes `text` says (any sign, any magnitude), or nil if it is not a size.
    static func bytes(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for (suffix, factor) in sizeUnits where trimmed.lowercased().hasSuffix(suffix.lowercased()) {
            let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            return plainNumber(number).map { $0 * factor }
        }
        return plainNumber(trimmed)
    }

    /// A finite decimal number (`12`, `1.5`, `-3`, `1_000`); not `nan`, `inf` or hexadecimal.
    private static func plainNumber(_ text: String) -> Double? {
        let digits = text.replacingOccurrences(of: "_", with: "")
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "e" || $0 == "E") }),
              let value = Double(digits), value.isFinite else { return nil }
        return value
    }

    /// `text` as a duration within `range`.
    package static func duration(_ text: String, within range: ClosedRange<Duration>) -> Result<Duration, Problem> {
        guard let seconds = seconds(text) else {
            return .failure(Problem(reason: "'\(text)' is not a duration (e.g. 500ms, 2s, 10m, 1h)"))
        }
        guard seconds >= Self.seconds(of: range.lowerBound), seconds <= Self.seconds(of: range.upperBound) else {
            return .failure(Problem(reason: "'\(text)' is out of range: must be between \(format(range.lowerBound)) and \(format(range.upperBound))"))
        }
        // Within the range, so well inside what Int64 nanoseconds hold (ranges stay under ~290 years).
        return .success(.nanoseconds(Int64((seconds * 1e9).rounded())))
    }

    /// `text` as a byte count within `range`.
    package static func size(_ text: String, within range: ClosedRange<Int>) -> Result<Int, Problem> {
        guard let bytes = bytes(text) else {
            return .failure(Problem(reason: "'\(text)' is not a byte size (e.g. 1048576, 512KiB, 64MiB, 1GiB)"))
        }
        guard bytes >= Double(range.lowerBound), bytes <= Double(range.upperBound) else {
            return .failure(Problem(reason: "'\(text)' is out of range: must be between \(format(size: range.lowerBound)) and \(format(size: range.upperBound))"))
        }
        return .success(Int(bytes))
    }

    /// `text` as a whole number within `range` (`_` may group digits).
    package static func count(_ text: String, within range: ClosedRange<Int>) -> Result<Int, Problem> {
        guard let value = plainNumber(text.trimmingCharacters(in: .whitespaces)), value.rounded() == value else {
            return .failure(Problem(reason: "'\(text)' is not a whole number"))
        }
        guard value >= Double(range.lowerBound), value <= Double(range.upperBound) else {
            return .failure(Problem(reason: "'\(text)' is out of range: must be between \(range.lowerBound) and \(range.upperBound)"))
        }
        return .success(Int(value))
    }

    /// The longest duration any option accepts: ten years.
    package static let longestDuration: Duration = .seconds(10 * 365 * 86400)

    /// Any non-negative duration up to `longestDuration` (for callers without a range of their own).
    package static func duration(_ text: String) -> Duration? {
        try? duration(text, within: .zero ... longestDuration).get()
    }

    static func seconds(of duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// Any non-negative size an `Int` can hold.
    package static func size(_ text: String) -> Int? {
        try? size(text, within: 0 ... Int.max / 2).get()
    }

    package static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let millis = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if millis % 1000 != 0 { return "\(millis)ms" }
        if seconds % 3600 == 0, seconds > 0 { return "\(seconds / 3600)h" }
        if seconds % 60 == 0, seconds > 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }

    package static func format(size: Int) -> String {
        for (suffix, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where size >= factor && size % factor == 0 {
            return "\(size / factor)\(suffix)"
        }
        return String(size)
    }
}

/// `HOST:PORT`; IPv6 hosts in brackets (`[::1]:4318`).
package struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    package init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let colon = trimmed.lastIndex(of: ":") else { return nil }
        var host = String(trimmed[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(trimmed[trimmed.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        self.init(host: host, port: port)
    }

    package var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

import Foundation
