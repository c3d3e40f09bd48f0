import Foundation

/// The `Retry-After` response header (RFC 9110 §10.2.3): `delay-seconds` or an `HTTP-date`.
///
/// OTLP servers throttle with 429 / 503 and `Retry-After` ("OTLP/HTTP Throttling"); both forms must
/// be understood. HTTP-dates are read in all three forms RFC 9110 §5.6.7 requires recipients to
/// accept: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
package enum RetryAfter {
    /// The wait the header asks for, relative to `now` (a date in the past means "now": zero).
    /// Nil when the value is neither form.
    package static func parse(_ value: String, now: Date) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        if trimmed.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // delay-seconds = 1*DIGIT; absurdly long values saturate instead of overflowing.
            guard trimmed.utf8.count <= 12, let seconds = Int64(trimmed) else { return .seconds(Int64(999_999_999_999)) }
            return .seconds(seconds)
        }
        guard let epochSeconds = httpDate(trimmed, now: now) else { return nil }
        let delta = Double(epochSeconds) - now.timeIntervalSince1970
        return DurationSeconds.duration(delta)
    }

    /// Seconds since 1970 (UTC) of an HTTP-date, or nil.
    package static func httpDate(_ value: String, now: Date) -> Int64? {
        let tokens = value.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" || $0 == ":" }).map(String.init)
        let fields: (day: Int, month: Int, year: Int, hour: Int, minute: Int, second: Int)
        if tokens.count == 8, tokens[7] == "GMT", let month = month(tokens[2]) {
            // IMF-fixdate or RFC 850: day-name, day, month, year, hh, mm, ss, GMT
            guard let day = Int(tokens[1]), let rawYear = Int(tokens[3]),
                  let hour = Int(tokens[4]), let minute = Int(tokens[5]), let second = Int(tokens[6]) else { return nil }
            let year = tokens[3].count == 2 ? fullYear(twoDigit: rawYear, now: now) : rawYear
            fields = (day, month, year, hour, minute, second)
        } else if tokens.count == 7, let month = month(tokens[1]) {
            // asctime: day-name, month, day, hh, mm, ss, year
            guard let day = Int(tokens[2]), let hour = Int(tokens[3]), let minute = Int(tokens[4]),
                  let second = Int(tokens[5]), let year = Int(tokens[6]) else { return nil }
            fields = (day, month, year, hour, minute, second)
        } else {
            return nil
        }
        guard (1...31).contains(fields.day), (0...23).contains(fields.hour), (0...59).contains(fields.minute),
              (0...60).contains(fields.second), (1...9999).contains(fields.year) else { return nil }
        let days = daysSinceEpoch(year: fields.year, month: fields.month, day: fields.day)
        return Int64(days) * 86_400 + Int64(fields.hour * 3600 + fields.minute * 60 + fields.second)
    }

    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    private static func month(_ token: String) -> Int? {
        months.firstIndex(of: token.lowercased()).map { $0 + 1 }
    }

    /// RFC 9110 §5.6.7: a two-digit year that would lie more than 50 years in the future means the
    /// most recent past year with those digits.
    private static func fullYear(twoDigit: Int, now: Date) -> Int {
        let currentYear = 1970 + Int(now.timeIntervalSince1970 / 31_556_952)
        var year = currentYear - currentYear % 100 + twoDigit
        if year > currentYear + 50 { year -= 100 }
        return year
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (the civil-from-days method: a year that
    /// starts in March puts the leap day last, so the day of the year is a linear formula).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
