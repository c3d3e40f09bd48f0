import StitchTestSupport

/// Rewrites valid protobuf bytes into other valid encodings: fields reordered (repeated fields split
/// and interleaved), earlier "decoy" occurrences of scalar fields (proto3: the last one wins), and known
/// field numbers with the wrong wire type (parsers skip those as unknown). Both decoders under
/// comparison then read the same rewritten bytes, so the reference decides what they mean.
///
/// Never duplicates `ResourceSpans.resource` or `ScopeSpans.scope` (the fast reader documents last-wins
/// instead of protobuf's merge for those).
struct WireMutator {
    enum Shape { case request, resourceSpans, resource, scopeSpans, scope, span, event, link, status, keyValue, anyValue, array, kvlist }

    /// Sub-message fields per shape (test-side restatement of the OTLP schema).
    static func child(_ shape: Shape, _ field: UInt64) -> Shape? {
        switch (shape, field) {
        case (.request, 1): return .resourceSpans
        case (.resourceSpans, 1): return .resource
        case (.resourceSpans, 2): return .scopeSpans
        case (.resource, 1), (.scope, 3), (.span, 9), (.event, 3), (.link, 4), (.kvlist, 1): return .keyValue
        case (.scopeSpans, 1): return .scope
        case (.scopeSpans, 2): return .span
        case (.span, 11): return .event
        case (.span, 13): return .link
        case (.span, 15): return .status
        case (.keyValue, 2), (.array, 1): return .anyValue
        case (.anyValue, 5): return .array
        case (.anyValue, 6): return .kvlist
        default: return nil
        }
    }

    enum Decoy { case string, bytes, varint, fixed64, fixed32 }

    /// Scalar fields that may get an extra occurrence, with the encoding to give it. Some use a wrong
    /// wire type on purpose.
    static func decoys(_ shape: Shape) -> [(field: UInt64, kind: Decoy)] {
        switch shape {
        case .span:
            return [(1, .bytes), (2, .bytes), (3, .string), (4, .bytes), (5, .string), (6, .varint), (7, .fixed64),
                    (8, .fixed64), (10, .varint), (12, .varint), (14, .varint), (16, .fixed32),
                    (5, .varint), (7, .varint), (9, .fixed32), (1, .fixed64), (15, .varint), (16, .varint)]
        case .status: return [(2, .string), (3, .varint), (3, .fixed32)]
        case .anyValue: return [(1, .string), (2, .varint), (3, .varint), (4, .fixed64), (7, .bytes), (5, .varint), (1, .fixed32)]
        case .keyValue: return [(1, .string), (2, .varint)]
        case .scope: return [(1, .string), (2, .string), (4, .varint)]
        case .resource: return [(2, .varint), (1, .fixed64)]
        case .resourceSpans: return [(3, .string), (1, .varint)]
        case .scopeSpans: return [(3, .string), (1, .fixed32), (2, .varint)]
        case .event: return [(1, .fixed64), (2, .string)]
        case .link: return [(1, .bytes), (2, .bytes), (6, .fixed32)]
        default: return []
        }
    }

    var random: SplitMix64
    var decoyProbability = 0.1
    var shuffleProbability = 0.3

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    fileprivate struct RawField {
        var number: UInt64
        var wireType: UInt64
        var contents: [UInt8]
    }

    mutating func mutate(_ bytes: [UInt8], as shape: Shape = .request) -> [UInt8] {
        var fields = Self.split(bytes)
        for index in fields.indices where fields[index].wireType == 2 {
            if let child = Self.child(shape, fields[index].number) {
                fields[index].contents = mutate(fields[index].contents, as: child)
            }
        }
        for decoy in Self.decoys(shape) where Double.random(in: 0..<1, using: &random) < decoyProbability {
            fields.insert(RawField(number: decoy.field, wireType: 0, contents: []).with(make(decoy.kind)),
                          at: Int.random(in: 0...fields.count, using: &random))
        }
        if Double.random(in: 0..<1, using: &random) < shuffleProbability {
            fields.shuffle(using: &random)
        }
        var out: [UInt8] = []
        for field in fields {
            Self.appendVarint(field.number << 3 | field.wireType, to: &out)
            if field.wireType == 2 { Self.appendVarint(UInt64(field.contents.count), to: &out) }
            out += field.contents
        }
        return out
    }

    private mutating func make(_ kind: Decoy) -> (wireType: UInt64, contents: [UInt8]) {
        switch kind {
        case .string:
            return (2, Array(["", "decoy", "é🙂", "service.name"][Int.random(in: 0...3, using: &random)].utf8))
        case .bytes:
            return (2, (0..<[0, 8, 16, 3][Int.random(in: 0...3, using: &random)]).map { _ in UInt8.random(in: 0...255, using: &random) })
        case .varint:
            var out: [UInt8] = []
            Self.appendVarint(UInt64.random(in: 0...UInt64.max, using: &random) >> UInt64(Int.random(in: 0...63, using: &random)), to: &out)
            return (0, out)
        case .fixed64: return (1, (0..<8).map { _ in UInt8.random(in: 0...255, using: &random) })
        case .fixed32: return (5, (0..<4).map { _ in UInt8.random(in: 0...255, using: &random) })
        }
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    /// Splits a valid message into fields (input comes from swift-protobuf, so no error handling).
    private static func split(_ bytes: [UInt8]) -> [RawField] {
        var fields: [RawField] = []
        var position = 0
        func varint() -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }
        while position < bytes.count {
            let key = varint()
            let start = position
            let wireType = key & 7
            switch wireType {
            case 0: _ = varint()
            case 1: position += 8
            case 5: position += 4
            default:
                let length = Int(varint())
                fields.append(RawField(number: key >> 3, wireType: 2, contents: Array(bytes[position..<position + length])))
                position += length
                continue
            }
            fields.append(RawField(number: key >> 3, wireType: wireType, contents: Array(bytes[start..<position])))
        }
        return fields
    }
}

private extension WireMutator.RawField {
    func with(_ value: (wireType: UInt64, contents: [UInt8])) -> Self {
        var copy = self
        copy.wireType = value.wireType
        copy.contents = value.contents
        return copy
    }
}
