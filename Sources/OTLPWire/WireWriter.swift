/// Appends protobuf-encoded fields to a byte array.
struct WireWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    /// Bytes a varint of `value` takes.
    static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var rest = value >> 7
        while rest != 0 {
            size += 1
            rest >>= 7
        }
        return size
    }

    /// Bytes a length-delimited field `field` with `length` bytes of contents takes.
    static func lengthDelimitedSize(field: UInt32, length: Int) -> Int {
        varintSize(UInt64(field) << 3) + varintSize(UInt64(length)) + length
    }

    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    mutating func tag(_ field: UInt32, _ wireType: WireType) {
        varint(UInt64(field) << 3 | UInt64(wireType.rawValue))
    }

    // MARK: fields (proto3: scalars equal to their default are not written)

    mutating func varintField(_ field: UInt32, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, .varint)
        varint(value)
    }

    /// An `int32`/enum field: negative values take ten bytes (sign-extended), as protobuf requires.
    mutating func int32Field(_ field: UInt32, _ value: Int32) {
        varintField(field, UInt64(bitPattern: Int64(value)))
    }

    mutating func int64Field(_ field: UInt32, _ value: Int64) {
        varintField(field, UInt64(bitPattern: value))
    }

    mutating func fixed64Field(_ field: UInt32, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, .fixed64)
        fixed64(value)
    }

    mutating func fixed64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    mutating func fixed32Field(_ field: UInt32, _ value: UInt32) {
        guard value != 0 else { return }
        tag(field, .fixed32)
        for shift in stride(from: 0, to: 32, by: 8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    /// A `bytes` field; empty contents are not written.
    mutating func bytesField(_ field: UInt32, _ value: some Collection<UInt8>) {
        guard !value.isEmpty else { return }
        lengthDelimited(field, value)
    }

    mutating func stringField(_ field: UInt32, _ value: String) {
        bytesField(field, value.utf8)
    }

    /// A length-delimited field written even when empty (a message that is present, a repeated element).
    mutating func lengthDelimited(_ field: UInt32, _ contents: some Collection<UInt8>) {
        tag(field, .lengthDelimited)
        varint(UInt64(contents.count))
        bytes.append(contentsOf: contents)
    }

    /// Starts a sub-message field whose length is not known yet; returns the position that
    /// `endMessage(_:)` needs. The length prefix is reserved as one byte and widened at the end when
    /// the contents turned out longer than 127 bytes.
    mutating func beginMessage(_ field: UInt32) -> Int {
        tag(field, .lengthDelimited)
        bytes.append(0)
        return bytes.count - 1
    }

    /// Ends the sub-message started at `prefixAt` by writing its length prefix.
    mutating func endMessage(_ prefixAt: Int) {
        let length = bytes.count - prefixAt - 1
        let prefixSize = Self.varintSize(UInt64(length))
        if prefixSize > 1 {
            bytes.insert(contentsOf: repeatElement(0, count: prefixSize - 1), at: prefixAt + 1)
        }
        var rest = UInt64(length)
        for index in prefixAt..<prefixAt + prefixSize {
            bytes[index] = rest >= 0x80 ? UInt8(truncatingIfNeeded: rest) | 0x80 : UInt8(rest)
            rest >>= 7
        }
    }

    /// A sub-message written by `body`, always present (even when empty).
    mutating func message(_ field: UInt32, _ body: (inout WireWriter) -> Void) {
        let prefixAt = beginMessage(field)
        body(&self)
        endMessage(prefixAt)
    }
}
