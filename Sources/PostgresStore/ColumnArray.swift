import NIOCore
import PostgresNIO

/// One column of a batch as a PostgreSQL array parameter (binary format), so that a whole batch is
/// one statement: `INSERT … SELECT * FROM unnest($1::text[], $2::bigint[], …)`. postgres-nio's own
/// `Array` encoding has no NULL elements and copies each string once more; this builds the array's
/// body as the rows are added.
///
/// Texts are what PostgreSQL will store: a NUL character (which PostgreSQL's text cannot hold) is
/// replaced by U+FFFD, and a text over the column's `varchar(n)` is cut at `n` characters, as
/// SQLite (which ignores the declared length) would have kept it whole but PostgreSQL refuses it.
struct ColumnArray: PostgresDynamicTypeEncodable, Sendable {
    enum Element: Sendable {
        case text, int8, float8

        var arrayType: PostgresDataType {
            switch self {
            case .text: return .textArray
            case .int8: return .int8Array
            case .float8: return .float8Array
            }
        }

        var elementType: PostgresDataType {
            switch self {
            case .text: return .text
            case .int8: return .int8
            case .float8: return .float8
            }
        }
    }

    let element: Element
    /// The most characters a text element keeps (`varchar(n)`); nil for `text`.
    let maximumCharacters: Int?
    private(set) var count: Int32 = 0
    private var hasNull = false
    private var body: ByteBuffer

    var psqlType: PostgresDataType { element.arrayType }
    var psqlFormat: PostgresFormat { .binary }

    init(_ element: Element, maximumCharacters: Int? = nil, capacity: Int = 0) {
        self.element = element
        self.maximumCharacters = maximumCharacters
        body = ByteBufferAllocator().buffer(capacity: capacity * 16)
    }

    mutating func appendNull() {
        count += 1
        hasNull = true
        body.writeInteger(-1, as: Int32.self)
    }

    mutating func append(_ value: String?) {
        precondition(element == .text)
        guard let value else { return appendNull() }
        count += 1
        let stored = Self.storable(value, maximumCharacters: maximumCharacters)
        body.writeInteger(Int32(stored.utf8.count), as: Int32.self)
        body.writeString(stored)
    }

    /// UTF-8 text the caller guarantees holds no NUL byte and needs no cut (Stitch's own JSON).
    mutating func append(utf8 bytes: [UInt8]) {
        precondition(element == .text && maximumCharacters == nil)
        count += 1
        body.writeInteger(Int32(bytes.count), as: Int32.self)
        body.writeBytes(bytes)
    }

    mutating func append(_ value: Int64?) {
        precondition(element == .int8)
        guard let value else { return appendNull() }
        count += 1
        body.writeInteger(8, as: Int32.self)
        body.writeInteger(value, as: Int64.self)
    }

    mutating func append(_ value: Double?) {
        precondition(element == .float8)
        guard let value else { return appendNull() }
        count += 1
        body.writeInteger(8, as: Int32.self)
        body.writeInteger(value.bitPattern, as: UInt64.self)
    }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        // PostgreSQL's binary array: dimensions, has-null flag, element type, then per dimension its
        // length and lower bound, then each element as length (-1 for NULL) and bytes.
        buffer.writeInteger(count == 0 ? 0 : 1, as: Int32.self)
        buffer.writeInteger(hasNull ? 1 : 0, as: Int32.self)
        buffer.writeInteger(element.elementType.rawValue, as: UInt32.self)
        guard count > 0 else { return }
        buffer.writeInteger(count, as: Int32.self)
        buffer.writeInteger(1, as: Int32.self)
        buffer.writeImmutableBuffer(body)
    }

    static func storable(_ value: String, maximumCharacters: Int?) -> String {
        var text = value
        if text.utf8.contains(0) { text = String(text.unicodeScalars.map { $0 == "\0" ? "\u{FFFD}" : Character($0) }) }
        if let maximumCharacters, text.utf8.count > maximumCharacters, text.unicodeScalars.count > maximumCharacters {
            text = String(String.UnicodeScalarView(text.unicodeScalars.prefix(maximumCharacters)))
        }
        return text
    }
}
