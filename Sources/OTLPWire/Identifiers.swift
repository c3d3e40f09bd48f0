/// A 16-byte W3C / OTLP trace id, kept as two big-endian halves so that it hashes and compares
/// as integers instead of as heap-allocated byte arrays.
package struct TraceID: Hashable, Comparable, Sendable {
    package var high: UInt64
    package var low: UInt64

    package init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Reads 16 bytes (big-endian). Returns nil for any other length.
    package init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }

    /// Parses 32 hex characters, either case.
    package init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 32,
              let high = HexCoding.parseUInt64(utf8[0..<16]),
              let low = HexCoding.parseUInt64(utf8[16..<32]) else { return nil }
        self.init(high: high, low: low)
    }

    package var isZero: Bool { high == 0 && low == 0 }

    /// 32 lowercase hex characters.
    package var hex: String { HexCoding.hex(high) + HexCoding.hex(low) }

    /// The 16 raw bytes, big-endian.
    package var bytes: [UInt8] { HexCoding.bigEndianBytes(high) + HexCoding.bigEndianBytes(low) }

    package static func < (lhs: TraceID, rhs: TraceID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// An 8-byte span id. Zero means "no span" (an absent parent).
package struct SpanID: Hashable, Comparable, Sendable {
    package var raw: UInt64

    package init(raw: UInt64) { self.raw = raw }

    package init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == 8 else { return nil }
        var value: UInt64 = 0
        for byte in bytes { value = value << 8 | UInt64(byte) }
        self.init(raw: value)
    }

    package init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 16, let raw = HexCoding.parseUInt64(utf8[0..<16]) else { return nil }
        self.init(raw: raw)
    }

    package static let none = SpanID(raw: 0)

    package var isZero: Bool { raw == 0 }

    /// 16 lowercase hex characters.
    package var hex: String { HexCoding.hex(raw) }

    package var bytes: [UInt8] { HexCoding.bigEndianBytes(raw) }

    package static func < (lhs: SpanID, rhs: SpanID) -> Bool { lhs.raw < rhs.raw }
}

/// Hex helpers shared by ids and the JSON paths.
package enum HexCoding {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    package static func hex(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            for index in 0..<16 {
                let shift = UInt64(60 - index * 4)
                buffer[index] = digits[Int((value >> shift) & 0xF)]
            }
            return 16
        }
    }

    package static func hex(_ bytes: some Collection<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    package static func parseUInt64(_ chars: some Collection<UInt8>) -> UInt64? {
        guard chars.count == 16 else { return nil }
        var value: UInt64 = 0
        for char in chars {
            guard let nibble = nibble(char) else { return nil }
            value = value << 4 | UInt64(nibble)
        }
        return value
    }

    @inline(__always)
    package static func nibble(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return char - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    package static func bigEndianBytes(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(56 - $0 * 8)) }
    }
}
