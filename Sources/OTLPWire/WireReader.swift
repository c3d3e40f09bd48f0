/// Protobuf wire types (protobuf encoding spec, "Message Structure").
enum WireType: UInt8, Sendable {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case startGroup = 3
    case endGroup = 4
    case fixed32 = 5
}

/// One field key: number and wire type.
struct FieldTag: Sendable {
    var number: UInt32
    var wireType: WireType

    init(number: UInt32, wireType: WireType) {
        self.number = number
        self.wireType = wireType
    }
}

/// A bounds-checked, zero-copy cursor over a region of a protobuf buffer.
///
/// Positions are absolute indices into the underlying buffer, so a length-delimited field is returned
/// as a `Range<Int>` that indexes the original `[UInt8]` directly, and a sub-message is read by a new
/// reader over that range of the same buffer. Every length is checked against the bytes remaining in
/// the region before it is used; nothing here can read outside `buffer`.
struct WireReader {
    let buffer: UnsafeBufferPointer<UInt8>
    var position: Int
    let end: Int

    /// A reader over `range` of `buffer`. `range` must lie inside the buffer (callers pass ranges
    /// produced by another reader over the same buffer).
    init(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= buffer.count, "reader range outside buffer")
        self.buffer = buffer
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var isAtEnd: Bool { position >= end }

    var remaining: Int { end - position }

    /// Reads a base-128 varint of at most 10 bytes; more bytes, or bits beyond 64, are an overflow.
    @inline(__always)
    mutating func readVarint() throws(WireError) -> UInt64 {
        // Fast path: one byte (tags, small lengths, enums, booleans).
        if position < end {
            let first = buffer[position]
            if first < 0x80 {
                position += 1
                return UInt64(first)
            }
        }
        return try readVarintSlow()
    }

    mutating func readVarintSlow() throws(WireError) -> UInt64 {
        let start = position
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else {
                throw WireError("truncated varint at byte \(start)")
            }
            let byte = buffer[position]
            position += 1
            if shift == 63 {
                // The tenth byte may only carry the 64th bit and must end the varint.
                guard byte <= 1 else { throw WireError("varint overflows 64 bits at byte \(start)") }
                return value | UInt64(byte) << 63
            }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    /// Reads the next field key, or nil at the end of the region. Rejects field number 0, field
    /// numbers above 2^29-1, undefined wire types 6/7 and groups (deprecated; OTLP never uses them).
    @inline(__always)
    mutating func readTag() throws(WireError) -> FieldTag? {
        if position >= end { return nil }
        let start = position
        let key = try readVarint()
        let number = key >> 3
        let wireType = key & 7
        // Wire types 0, 1, 2 and 5 are valid (bit set in 0b10_0111); 3/4 are groups, 6/7 undefined.
        guard number != 0, number <= 0x1FFF_FFFF, (0b10_0111 as UInt64) >> wireType & 1 == 1,
              let type = WireType(rawValue: UInt8(wireType)) else {
            throw Self.invalidKey(key, at: start)
        }
        return FieldTag(number: UInt32(truncatingIfNeeded: number), wireType: type)
    }

    @inline(never)
    private static func invalidKey(_ key: UInt64, at offset: Int) -> WireError {
        let number = key >> 3
        guard number != 0, number <= 0x1FFF_FFFF else {
            return WireError("invalid field number \(number) at byte \(offset)")
        }
        let wireType = key & 7
        if wireType == 3 || wireType == 4 {
            return WireError("group wire type \(wireType) for field \(number) at byte \(offset) is not supported")
        }
        return WireError("invalid wire type \(wireType) for field \(number) at byte \(offset)")
    }

    @inline(__always)
    mutating func readFixed64() throws(WireError) -> UInt64 {
        try readLittleEndian(UInt64.self)
    }

    @inline(__always)
    mutating func readFixed32() throws(WireError) -> UInt32 {
        try readLittleEndian(UInt32.self)
    }

    @inline(__always)
    private mutating func readLittleEndian<T: FixedWidthInteger>(_: T.Type) throws(WireError) -> T {
        let size = T.bitWidth / 8
        guard remaining >= size else { throw Self.truncated("fixed\(T.bitWidth)", at: position) }
        var value: T = 0
        for offset in (0..<size).reversed() {
            value = value << 8 | T(buffer[position + offset])
        }
        position += size
        return value
    }

    /// Reads a length prefix and returns the range of the field's contents, advancing past them.
    @inline(__always)
    mutating func readLengthDelimited() throws(WireError) -> Range<Int> {
        let start = position
        let length = try readVarint()
        guard length <= UInt64(remaining) else {
            throw Self.lengthBeyondEnd(length, at: start, remaining: remaining)
        }
        let lower = position
        position += Int(length)
        return lower..<position
    }

    @inline(never)
    private static func lengthBeyondEnd(_ length: UInt64, at offset: Int, remaining: Int) -> WireError {
        WireError("length \(length) at byte \(offset) exceeds the \(remaining) bytes remaining")
    }

    @inline(never)
    private static func truncated(_ what: String, at offset: Int) -> WireError {
        WireError("truncated \(what) at byte \(offset)")
    }

    /// Skips the value of a field of the given wire type (unknown fields, or known fields with an
    /// unexpected wire type, which protobuf parsers treat as unknown).
    @inline(__always)
    mutating func skip(_ wireType: WireType) throws(WireError) {
        switch wireType {
        case .varint: _ = try readVarint()
        case .fixed64:
            guard remaining >= 8 else { throw Self.truncated("fixed64", at: position) }
            position += 8
        case .fixed32:
            guard remaining >= 4 else { throw Self.truncated("fixed32", at: position) }
            position += 4
        case .lengthDelimited: _ = try readLengthDelimited()
        case .startGroup, .endGroup:
            // readTag never returns these.
            throw WireError("group wire type at byte \(position) is not supported")
        }
    }

    /// True when `range` of the buffer equals `literal` (compares without allocating).
    func bytes(_ range: Range<Int>, equal literal: StaticString) -> Bool {
        guard range.count == literal.utf8CodeUnitCount else { return false }
        let expected = literal.utf8Start
        for offset in 0..<range.count where buffer[range.lowerBound + offset] != expected[offset] {
            return false
        }
        return true
    }

    /// True when every byte of `range` is zero.
    func isAllZero(_ range: Range<Int>) -> Bool {
        for index in range where buffer[index] != 0 { return false }
        return true
    }

    /// The big-endian integer in `range` (at most 8 bytes).
    func bigEndian(_ range: Range<Int>) -> UInt64 {
        var value: UInt64 = 0
        for index in range { value = value << 8 | UInt64(buffer[index]) }
        return value
    }

    /// `range` decoded as UTF-8; invalid sequences become U+FFFD (lenient, unlike protobuf's strict
    /// proto3 check: a bad byte in one attribute must not lose the span).
    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: buffer[range]), as: UTF8.self)
    }

    func array(_ range: Range<Int>) -> [UInt8] {
        Array(buffer[range])
    }
}
