/// A parsed JSON value. Numbers keep their literal text so that 64-bit integers are read exactly
/// (never through `Double`).
indirect enum JSONValue {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONNode])
    case object([(key: String, node: JSONNode)])
}

/// A value and the byte offset where it starts (for error messages).
struct JSONNode {
    var offset: Int
    var value: JSONValue
}

/// A strict RFC 8259 parser with bounded nesting. Invalid UTF-8 inside strings is replaced (U+FFFD).
struct JSONParser {
    /// Containers nested deeper than this are refused (OTLP needs ~3 levels per nested AnyValue).
    static let maxDepth = 160

    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var depth = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// Parses one JSON document (surrounding whitespace allowed, nothing else after it).
    static func parse(_ input: [UInt8]) throws(WireError) -> JSONNode {
        try input.withUnsafeBufferPointer { buffer throws(WireError) in
            var parser = JSONParser(buffer)
            let node = try parser.value()
            parser.skipWhitespace()
            guard parser.position == buffer.count else {
                throw parser.error("unexpected content after the JSON value")
            }
            return node
        }
    }

    private func error(_ message: String, at offset: Int? = nil) -> WireError {
        WireError("invalid JSON at byte \(offset ?? position): \(message)")
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func value() throws(WireError) -> JSONNode {
        skipWhitespace()
        let start = position
        guard position < bytes.count else { throw error("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return JSONNode(offset: start, value: try object())
        case UInt8(ascii: "["): return JSONNode(offset: start, value: try array())
        case UInt8(ascii: "\""): return JSONNode(offset: start, value: .string(try string()))
        case UInt8(ascii: "t"): try literal("true"); return JSONNode(offset: start, value: .bool(true))
        case UInt8(ascii: "f"): try literal("false"); return JSONNode(offset: start, value: .bool(false))
        case UInt8(ascii: "n"): try literal("null"); return JSONNode(offset: start, value: .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return JSONNode(offset: start, value: .number(try number()))
        default:
            throw error("unexpected character '\(Character(Unicode.Scalar(bytes[position])))'")
        }
    }

    private mutating func enter() throws(WireError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth) levels") }
    }

    private mutating func object() throws(WireError) -> JSONValue {
        try enter()
        position += 1
        var members: [(key: String, node: JSONNode)] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                throw error("expected a string key")
            }
            let key = try string()
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
            position += 1
            members.append((key, try value()))
            skipWhitespace()
            guard position < bytes.count else { throw error("unterminated object") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            guard bytes[position] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
            position += 1
            depth -= 1
            return .object(members)
        }
    }

    private mutating func array() throws(WireError) -> JSONValue {
        try enter()
        position += 1
        var elements: [JSONNode] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            elements.append(try value())
            skipWhitespace()
            guard position < bytes.count else { throw error("unterminated array") }
            if bytes[position] == UInt8(ascii: ",") {
                position += 1
                continue
            }
            guard bytes[position] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
            position += 1
            depth -= 1
            return .array(elements)
        }
    }

    private mutating func literal(_ word: StaticString) throws(WireError) {
        let count = word.utf8CodeUnitCount
        guard bytes.count - position >= count else { throw error("invalid literal") }
        for offset in 0..<count where bytes[position + offset] != word.utf8Start[offset] {
            throw error("invalid literal")
        }
        position += count
    }

    /// Checks the number grammar (RFC 8259 §6) and returns the literal text.
    private mutating func number() throws(WireError) -> String {
        let start = position
        func digits() -> Int {
            let first = position
            while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) {
                position += 1
            }
            return position - first
        }
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < bytes.count else { throw error("truncated number", at: start) }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else if digits() == 0 {
            throw error("invalid number", at: start)
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else { throw error("invalid number", at: start) }
        }
        if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard digits() > 0 else { throw error("invalid number", at: start) }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    }

    private mutating func string() throws(WireError) -> String {
        let start = position
        position += 1
        // Fast path: no escapes, so the string is the bytes between the quotes.
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                position += 1
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start + 1..<position - 1]), as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            position += 1
        }
        var out = Array(bytes[start + 1..<position])
        while true {
            guard position < bytes.count else { throw error("unterminated string", at: start) }
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try escape(into: &out)
            case 0..<0x20:
                throw error("control character in string")
            default:
                out.append(byte)
                position += 1
            }
        }
    }

    private mutating func escape(into out: inout [UInt8]) throws(WireError) {
        position += 1
        guard position < bytes.count else { throw error("truncated escape") }
        let byte = bytes[position]
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(byte)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try hex4())
            if (0xD800..<0xDC00).contains(scalar), bytes.count - position >= 6,
               bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") {
                let mark = position
                position += 2
                let low = UInt32(try hex4())
                if (0xDC00..<0xE000).contains(low) {
                    scalar = 0x10000 + (scalar - 0xD800) << 10 + (low - 0xDC00)
                } else {
                    position = mark
                }
            }
            // Lone surrogates become U+FFFD.
            out.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
        default:
            throw error("invalid escape '\\\(Character(Unicode.Scalar(byte)))'", at: position - 2)
        }
    }

    private mutating func hex4() throws(WireError) -> UInt16 {
        guard bytes.count - position >= 4 else { throw error("truncated \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard let nibble = HexCoding.nibble(bytes[position]) else { throw error("invalid \\u escape") }
            value = value << 4 | UInt16(nibble)
            position += 1
        }
        return value
    }
}
