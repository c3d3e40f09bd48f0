import OTLPWire

/// A JSON value as Python's `json` module sees it.
///
/// MLflow writes every stored span with `json.dumps` and reads attribute values back with
/// `json.loads`, and the store must reproduce those bytes exactly (the `spans.content` column of
/// fixture 13 is compared byte for byte). So this models Python's value space: integers and
/// floats are distinct (`1` vs `1.0`), objects keep insertion order, and a repeated key keeps its
/// first position with the last value (dict assignment).
///
/// Not `indirect`: arrays and objects already keep their elements in heap storage, and an indirect
/// enum would box every value (a span's dozen attribute strings were a dozen allocations).
package enum PyJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int64)
    /// An integer literal outside Int64 (Python ints are unbounded); kept as its digits.
    case bigInt(String)
    case double(Double)
    case string(String)
    case array([PyJSON])
    case object(PyObject)

    package var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    package var objectValue: PyObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    package var arrayValue: [PyJSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// Python truthiness (`if value:`): empty strings, containers, zero, `None` and `False` are false.
    package var isTruthy: Bool {
        switch self {
        case .null: return false
        case .bool(let value): return value
        case .int(let value): return value != 0
        case .bigInt: return true
        case .double(let value): return value != 0
        case .string(let value): return !value.isEmpty
        case .array(let values): return !values.isEmpty
        case .object(let object): return !object.isEmpty
        }
    }
}

/// An insertion-ordered string-keyed object with Python dict semantics.
///
/// Span attribute sets are small, so lookups scan the pairs; an index is built only for large
/// objects (a big kvlist value), keeping lookups O(1) there.
package struct PyObject: Sendable, Equatable {
    private(set) var pairs: [(key: String, value: PyJSON)] = []
    private var index: [String: Int]?
    private static let indexThreshold = 16

    package init() {}

    /// An empty object with room for `capacity` pairs.
    package init(capacity: Int) {
        pairs.reserveCapacity(capacity)
    }

    package init(_ pairs: [(String, PyJSON)]) {
        for (key, value) in pairs { self[key] = value }
    }

    package var isEmpty: Bool { pairs.isEmpty }
    package var count: Int { pairs.count }
    package var keys: [String] { pairs.map(\.key) }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        // Lengths first: a span's keys mostly differ in length, and the count of a native
        // string is a field, while `==` on different strings of equal length compares bytes.
        let length = key.utf8.count
        return pairs.firstIndex { $0.key.utf8.count == length && $0.key == key }
    }

    /// Assignment keeps an existing key's position (as `dict[key] = value` does).
    package subscript(key: String) -> PyJSON? {
        get { position(of: key).map { pairs[$0].value } }
        set {
            if let newValue {
                if let existing = position(of: key) {
                    pairs[existing].value = newValue
                } else {
                    pairs.append((key, newValue))
                    if index != nil {
                        index![key] = pairs.count - 1
                    } else if pairs.count > Self.indexThreshold {
                        index = Dictionary(pairs.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { first, _ in first })
                    }
                }
            } else if let existing = position(of: key) {
                pairs.remove(at: existing)
                if index != nil {
                    index = Dictionary(pairs.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { first, _ in first })
                }
            }
        }
    }

    package static func == (lhs: PyObject, rhs: PyObject) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.key == $1.key && $0.value == $1.value }
    }
}

// MARK: - Writing (json.dumps)

/// Serializes like Python's `json.dumps(value)` with its default separators (`", "`, `": "`),
/// `allow_nan=True` and float `repr`.
package enum PyJSONWriter {
    /// `json.dumps(text, ensure_ascii=False)`, one allocation when nothing needs escaping (the
    /// usual case for attribute values).
    package static func dumpString(_ text: String) -> String {
        var text = text
        return text.withUTF8 { bytes -> String in
            guard !bytes.contains(where: needsEscape) else {
                return dump(.string(String(decoding: bytes, as: UTF8.self)), ensureASCII: false)
            }
            return String(unsafeUninitializedCapacity: bytes.count + 2) { buffer in
                buffer[0] = UInt8(ascii: "\"")
                _ = UnsafeMutableBufferPointer(rebasing: buffer[1...]).initialize(from: bytes)
                buffer[bytes.count + 1] = UInt8(ascii: "\"")
                return bytes.count + 2
            }
        }
    }

    package static func dump(_ value: PyJSON, ensureASCII: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, ensureASCII: ensureASCII, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    package static func write(_ value: PyJSON, ensureASCII: Bool, into out: inout String) {
        out += dump(value, ensureASCII: ensureASCII)
    }

    package static func write(_ value: PyJSON, ensureASCII: Bool, into out: inout [UInt8]) {
        switch value {
        case .null: append("null", to: &out)
        case .bool(let flag): append(flag ? "true" : "false", to: &out)
        case .int(let number): appendInt(number, into: &out)
        case .bigInt(let digits): out += digits.utf8
        case .double(let number): out += pythonFloatRepr(number).utf8
        case .string(let text): writeString(text, ensureASCII: ensureASCII, into: &out)
        case .array(let values):
            out.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { append(", ", to: &out) }
                write(element, ensureASCII: ensureASCII, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            var first = true
            for pair in object.pairs {
                if !first { append(", ", to: &out) }
                first = false
                writeString(pair.key, ensureASCII: ensureASCII, into: &out)
                append(": ", to: &out)
                write(pair.value, ensureASCII: ensureASCII, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Appends fixed text (keys, separators) with one copy; `+= "…".utf8` goes through the
    /// generic sequence path, byte by byte.
    @inline(__always)
    package static func append(_ text: StaticString, to out: inout [UInt8]) {
        text.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// Appends a string's UTF-8 with one copy.
    package static func appendUTF8(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { out.append(contentsOf: $0) }
    }

    /// The decimal digits of `number` (as `str(int)`), without an intermediate string.
    package static func appendInt(_ number: Int64, into out: inout [UInt8]) {
        if number < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = number.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var count = 0
            repeat {
                digits[19 - count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[(20 - count)...]))
        }
    }

    /// Python's string escaping: `ensure_ascii=False` escapes only `"`, `\` and C0 controls;
    /// `ensure_ascii=True` also escapes everything outside printable ASCII as `\uXXXX`
    /// (astral characters as a surrogate pair).
    package static func writeString(_ text: String, ensureASCII: Bool, into out: inout [UInt8]) {
        guard ensureASCII else {
            var text = text
            text.withUTF8 { writeString(utf8: $0, into: &out) }
            return
        }
        out.append(UInt8(ascii: "\""))
        for scalar in text.unicodeScalars {
            let value = scalar.value
            if value < 0x80 {
                appendASCII(UInt8(value), into: &out)
            } else if value > 0xFFFF {
                let offset = value - 0x10000
                appendUnicodeEscape(0xD800 + (offset >> 10), into: &out)
                appendUnicodeEscape(0xDC00 + (offset & 0x3FF), into: &out)
            } else {
                appendUnicodeEscape(value, into: &out)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `json.dumps(text, ensure_ascii=False)` of text given as UTF-8 bytes (which must be valid).
    package static func writeString(utf8 bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        appendEscaped(bytes, into: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// The inside of a JSON string with `ensure_ascii=False`: bytes as they are, except `"`, `\\`
    /// and controls, which are escaped. Runs without escapes are found eight bytes at a time; the
    /// output goes through a small block on the stack, so that text full of quotes (JSON inside a
    /// string) costs one array append per block rather than two per quote.
    package static func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        guard let base = bytes.baseAddress else { return }
        var index = firstEscape(bytes, from: 0)
        guard index < bytes.count else {
            out.append(contentsOf: bytes)
            return
        }
        let blockSize = 512
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: blockSize) { block in
            let target = block.baseAddress!
            var used = 0
            var runStart = 0
            while true {
                let run = index - runStart
                if used + run > blockSize {
                    out.append(contentsOf: UnsafeBufferPointer(start: target, count: used))
                    used = 0
                }
                if run > blockSize {
                    out.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: run))
                } else if run > 0 {
                    (target + used).update(from: base + runStart, count: run)
                    used += run
                }
                if index == bytes.count { break }
                if used + 6 > blockSize {
                    out.append(contentsOf: UnsafeBufferPointer(start: target, count: used))
                    used = 0
                }
                used += writeEscape(bytes[index], to: target + used)
                runStart = index + 1
                index = firstEscape(bytes, from: runStart)
            }
            out.append(contentsOf: UnsafeBufferPointer(start: target, count: used))
        }
    }

    /// The index of the first byte at or after `start` that needs escaping, or `bytes.count`
    /// (eight bytes at a time; the parser finds the end of a string with it too).
    @inline(__always)
    package static func firstEscape(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        var index = start
        while index + 8 <= bytes.count,
              !anyNeedsEscape(UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: UInt64.self)) {
            index += 8
        }
        while index < bytes.count, !needsEscape(bytes[index]) { index += 1 }
        return index
    }

    /// Writes Python's escape of an ASCII byte at `target` (`\\"`, `\\n`… or `\\u00XX`); returns
    /// its length.
    @inline(__always)
    private static func writeEscape(_ byte: UInt8, to target: UnsafeMutablePointer<UInt8>) -> Int {
        let short: UInt8
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): short = byte
        case 0x0A: short = UInt8(ascii: "n")
        case 0x0D: short = UInt8(ascii: "r")
        case 0x09: short = UInt8(ascii: "t")
        case 0x08: short = UInt8(ascii: "b")
        case 0x0C: short = UInt8(ascii: "f")
        default:
            target[0] = UInt8(ascii: "\\")
            target[1] = UInt8(ascii: "u")
            target[2] = UInt8(ascii: "0")
            target[3] = UInt8(ascii: "0")
            target[4] = hexDigits[Int(byte >> 4)]
            target[5] = hexDigits[Int(byte & 0xF)]
            return 6
        }
        target[0] = UInt8(ascii: "\\")
        target[1] = short
        return 2
    }

    /// Whether `json.dumps(ensure_ascii=False)` escapes this byte: a control character, `"` or `\\`.
    @inline(__always)
    package static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    /// Whether any of eight bytes is a control character, `"` or `\\` (bytes ≥ 0x80 never are).
    @inline(__always)
    package static func anyNeedsEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ value: UInt64) -> Bool { (value &- ones) & ~value & highs != 0 }
        // A byte below 0x20 (exact for bytes below 0x80; a byte ≥ 0x80 has its high bit set in
        // `word` and is masked out by `~word`).
        let below = (word &- ones &* 0x20) & ~word & highs != 0
        return below || hasZeroByte(word ^ (ones &* 0x22)) || hasZeroByte(word ^ (ones &* 0x5C))
    }

    /// One ASCII byte, escaped as Python escapes it (printable ASCII other than `"` and `\\` as is).
    private static func appendASCII(_ byte: UInt8, into out: inout [UInt8]) {
        if byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
            out.append(byte)
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 6) { escape in
            let count = writeEscape(byte, to: escape.baseAddress!)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: escape[..<count]))
        }
    }

    private static func appendUnicodeEscape(_ value: UInt32, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "u"))
        for shift in stride(from: 12, through: 0, by: -4) {
            out.append(hexDigits[Int((value >> UInt32(shift)) & 0xF)])
        }
    }

    /// Python's `repr(float)`: the shortest round-tripping digits, in positional notation when the
    /// decimal exponent is in -4...15 (with at least one fractional digit), else `d.ddde±XX`.
    /// `json.dumps` writes NaN and infinities as `NaN`, `Infinity`, `-Infinity`.
    package static func pythonFloatRepr(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        // Swift's description yields the same shortest round-trip digits as Python's repr; only
        // the layout rules differ at the edges, so take the digits and lay them out Python's way.
        var text = value.description
        let negative = text.hasPrefix("-")
        if negative { text.removeFirst() }
        var exponent = 0
        if let marker = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: marker)...]) ?? 0
            text = String(text[..<marker])
        }
        var digits = ""
        var pointPosition = text.count
        for (offset, character) in text.enumerated() {
            if character == "." { pointPosition = offset } else { digits.append(character) }
        }
        // value = 0.<digits> × 10^(decimalPoint) after stripping leading zeros.
        var decimalPoint = pointPosition + exponent
        while digits.count > 1, digits.first == "0" {
            digits.removeFirst()
            decimalPoint -= 1
        }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        if digits == "0" { return negative ? "-0.0" : "0.0" }
        let sign = negative ? "-" : ""
        let scientificExponent = decimalPoint - 1
        if scientificExponent < -4 || scientificExponent >= 16 {
            var mantissa = String(digits.first!)
            if digits.count > 1 { mantissa += "." + digits.dropFirst() }
            let exponentText = String(abs(scientificExponent))
            let padded = exponentText.count < 2 ? "0" + exponentText : exponentText
            return sign + mantissa + "e" + (scientificExponent < 0 ? "-" : "+") + padded
        }
        if decimalPoint <= 0 {
            return sign + "0." + String(repeating: "0", count: -decimalPoint) + digits
        }
        if decimalPoint >= digits.count {
            return sign + digits + String(repeating: "0", count: decimalPoint - digits.count) + ".0"
        }
        let split = digits.index(digits.startIndex, offsetBy: decimalPoint)
        return sign + digits[..<split] + "." + digits[split...]
    }
}

// MARK: - Reading (json.loads)

/// What kind of value a JSON text holds (`PyJSONParser.kind(utf8:)`).
package enum PyJSONKind: Sendable, Equatable {
    case null, bool, number, string, array, object

    package init(_ value: PyJSON) {
        switch value {
        case .null: self = .null
        case .bool: self = .bool
        case .int, .bigInt, .double: self = .number
        case .string: self = .string
        case .array: self = .array
        case .object: self = .object
        }
    }
}

/// Parses like Python's `json.loads` (strict mode): surrounding whitespace allowed, `NaN` and
/// `±Infinity` accepted, control characters inside strings rejected, trailing data rejected.
/// Returns nil where Python would raise `JSONDecodeError`.
package struct PyJSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    /// False to only check the text: strings, containers and numbers are walked but not built.
    private let building: Bool
    private var index = 0
    /// Nesting bound: Python raises RecursionError near 1,000 levels; deeper input is rejected.
    private static let maximumDepth = 512

    package static func parse(_ text: String) -> PyJSON? {
        run(text, building: true)
    }

    /// The kind of value `json.loads(text)` gives for text given as (valid) UTF-8, nil when it
    /// raises; allocates nothing (the store asks this of every attribute value, most of them never
    /// needed as a tree).
    package static func kind(utf8 bytes: UnsafeBufferPointer<UInt8>) -> PyJSONKind? {
        run(bytes, building: false).map(PyJSONKind.init)
    }

    private static func run(_ text: String, building: Bool) -> PyJSON? {
        var text = text
        return text.withUTF8 { buffer in run(buffer, building: building) }
    }

    private static func run(_ buffer: UnsafeBufferPointer<UInt8>, building: Bool) -> PyJSON? {
        var parser = PyJSONParser(bytes: buffer, building: building)
        parser.skipWhitespace()
        guard let value = parser.parseValue(depth: 0) else { return nil }
        parser.skipWhitespace()
        return parser.index == buffer.count ? value : nil
    }

    private init(bytes: UnsafeBufferPointer<UInt8>, building: Bool) {
        self.bytes = bytes
        self.building = building
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    private mutating func consume(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        let matches = literal.withUTF8Buffer { expected in
            (0..<count).allSatisfy { bytes[index + $0] == expected[$0] }
        }
        if matches { index += count }
        return matches
    }

    private mutating func parseValue(depth: Int) -> PyJSON? {
        guard depth < Self.maximumDepth, let byte = current else { return nil }
        switch byte {
        case UInt8(ascii: "{"): return parseObject(depth: depth)
        case UInt8(ascii: "["): return parseArray(depth: depth)
        case UInt8(ascii: "\""): return parseString().map(PyJSON.string)
        case UInt8(ascii: "n"): return consume("null") ? .null : nil
        case UInt8(ascii: "t"): return consume("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return consume("false") ? .bool(false) : nil
        case UInt8(ascii: "N"): return consume("NaN") ? .double(.nan) : nil
        case UInt8(ascii: "I"): return consume("Infinity") ? .double(.infinity) : nil
        default:
            if byte == UInt8(ascii: "-"), consume("-Infinity") { return .double(-.infinity) }
            return parseNumber()
        }
    }

    private mutating func parseObject(depth: Int) -> PyJSON? {
        index += 1
        var object = PyObject()
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\""), let key = parseString() else { return nil }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { return nil }
            index += 1
            skipWhitespace()
            guard let value = parseValue(depth: depth + 1) else { return nil }
            if building { object[key] = value }
            skipWhitespace()
            guard let separator = current else { return nil }
            index += 1
            if separator == UInt8(ascii: "}") { return .object(object) }
            guard separator == UInt8(ascii: ",") else { return nil }
        }
    }

    private mutating func parseArray(depth: Int) -> PyJSON? {
        index += 1
        var values: [PyJSON] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            return .array(values)
        }
        while true {
            skipWhitespace()
            guard let value = parseValue(depth: depth + 1) else { return nil }
            if building { values.append(value) }
            skipWhitespace()
            guard let separator = current else { return nil }
            index += 1
            if separator == UInt8(ascii: "]") { return .array(values) }
            guard separator == UInt8(ascii: ",") else { return nil }
        }
    }

    /// JSON number grammar (no leading zeros, no bare `.`); integers stay integers as in Python.
    private mutating func parseNumber() -> PyJSON? {
        let start = index
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, isDigit(first) else { return nil }
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            while let byte = current, isDigit(byte) { index += 1 }
        }
        var isInteger = true
        if current == UInt8(ascii: "."), index + 1 < bytes.count, isDigit(bytes[index + 1]) {
            isInteger = false
            index += 1
            while let byte = current, isDigit(byte) { index += 1 }
        }
        if let byte = current, byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            var lookahead = index + 1
            if lookahead < bytes.count, bytes[lookahead] == UInt8(ascii: "+") || bytes[lookahead] == UInt8(ascii: "-") {
                lookahead += 1
            }
            if lookahead < bytes.count, isDigit(bytes[lookahead]) {
                isInteger = false
                index = lookahead
                while let digit = current, isDigit(digit) { index += 1 }
            }
        }
        if !building { return isInteger ? .int(0) : .double(0) }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if isInteger {
            if let value = Int64(text) { return .int(value) }
            return .bigInt(text)
        }
        return Double(text).map(PyJSON.double)
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private mutating func parseString() -> String? {
        index += 1
        let start = index
        // Fast path: no escapes, the string is a slice of the input. The bytes that end it are the
        // ones the writer escapes (`"`, `\\`, a control character, which JSON does not allow here).
        index = PyJSONWriter.firstEscape(bytes, from: index)
        guard let stop = current, stop >= 0x20 else { return nil }
        if stop == UInt8(ascii: "\"") {
            index += 1
            return building ? String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index - 1]), as: UTF8.self) : ""
        }
        var out = building ? Array(bytes[start..<index]) : []
        while let byte = current {
            if byte == UInt8(ascii: "\"") {
                index += 1
                return building ? String(decoding: out, as: UTF8.self) : ""
            }
            if byte < 0x20 { return nil }
            index += 1
            guard byte == UInt8(ascii: "\\") else {
                if building { out.append(byte) }
                continue
            }
            guard let escape = current else { return nil }
            index += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): if building { out.append(escape) }
            case UInt8(ascii: "b"): if building { out.append(0x08) }
            case UInt8(ascii: "f"): if building { out.append(0x0C) }
            case UInt8(ascii: "n"): if building { out.append(0x0A) }
            case UInt8(ascii: "r"): if building { out.append(0x0D) }
            case UInt8(ascii: "t"): if building { out.append(0x09) }
            case UInt8(ascii: "u"):
                guard let unit = parseHex4() else { return nil }
                var scalar = Unicode.Scalar(unit)
                if (0xD800..<0xDC00).contains(unit), bytes.count >= index + 6,
                   bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                    let saved = index
                    index += 2
                    if let low = parseHex4(), (0xDC00..<0xE000).contains(low) {
                        scalar = Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                    } else {
                        index = saved
                    }
                }
                // A lone surrogate: Python keeps it; a Swift String cannot, so it becomes U+FFFD.
                if building { out += Array(String(scalar ?? "\u{FFFD}").utf8) }
            default:
                return nil
            }
        }
        return nil
    }

    private mutating func parseHex4() -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for offset in 0..<4 {
            guard let nibble = HexCoding.nibble(bytes[index + offset]) else { return nil }
            value = value << 4 | UInt32(nibble)
        }
        index += 4
        return value
    }
}
