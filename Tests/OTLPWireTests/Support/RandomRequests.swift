import Foundation
import OTLPModel
import SwiftProtobuf
import StitchTestSupport

/// Random `ExportTraceServiceRequest`s built with swift-protobuf: several resources and scopes, 0-50
/// spans each, every AnyValue kind (nested arrays / kvlists), events, links, trace state, dropped
/// counts, unknown fields, and now and then an invalid id.
struct RandomRequests {
    var random: SplitMix64

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &random) < probability
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &random)
    }

    mutating func bytes(_ count: Int) -> Data {
        Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &random) })
    }

    /// Strings with ASCII, JSON-special characters, control characters and non-ASCII scalars.
    mutating func string(maxLength: Int = 12) -> String {
        let pieces = ["a", "Z", "0", " ", "\"", "\\", "\n", "\t", "\u{01}", "é", "漢", "🙂", "_", ".", "{", "/"]
        return (0..<int(0...maxLength)).map { _ in pieces[int(0...pieces.count - 1)] }.joined()
    }

    mutating func id(_ length: Int) -> Data {
        var id = bytes(length)
        if id.allSatisfy({ $0 == 0 }) { id[0] = 1 }
        return id
    }

    /// An id that is usually valid, sometimes of the wrong length or all zeros.
    mutating func maybeBadID(_ length: Int) -> Data {
        switch int(0...60) {
        case 0: return Data(repeating: 0, count: length)
        case 1: return bytes(int(0...length * 2))
        default: return id(length)
        }
    }

    /// Unknown fields (numbers ≥ 100, every non-group wire type), merged into a message by parsing.
    mutating func unknownFieldBytes() -> Data {
        var out = Data()
        for _ in 0..<int(1...3) {
            let number = UInt64(int(100...5000))
            let wireType = [0, 1, 2, 5][int(0...3)]
            appendVarint(number << 3 | UInt64(wireType), to: &out)
            switch wireType {
            case 0: appendVarint(UInt64.random(in: 0...UInt64.max, using: &random) >> UInt64(int(0...63)), to: &out)
            case 1: out.append(bytes(8))
            case 2:
                let contents = bytes(int(0...20))
                appendVarint(UInt64(contents.count), to: &out)
                out.append(contents)
            default: out.append(bytes(4))
            }
        }
        return out
    }

    private func appendVarint(_ value: UInt64, to out: inout Data) {
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    /// `message` with unknown fields now and then.
    mutating func withUnknown<M: SwiftProtobuf.Message>(_ message: M) -> M {
        guard chance(0.15) else { return message }
        var copy = message
        try! copy.merge(serializedBytes: unknownFieldBytes())
        return copy
    }

    mutating func anyValue(depth: Int) -> PBAnyValue {
        var value = PBAnyValue()
        let kinds = depth >= 4 ? 6 : 8
        switch int(0...kinds) {
        case 0: value.stringValue = string()
        case 1: value.boolValue = chance(0.5)
        case 2: value.intValue = Int64.random(in: Int64.min...Int64.max, using: &random) >> Int64(int(0...63))
        case 3: value.doubleValue = [0.0, -0.0, 1.5, -2.25e-300, 1e300, .nan, .infinity, -.infinity, Double(int(-1000...1000)) / 7][int(0...8)]
        case 4: value.bytesValue = bytes(int(0...10))
        case 5, 6: break // no member set
        case 7:
            var array = Opentelemetry_Proto_Common_V1_ArrayValue()
            array.values = (0..<int(0...4)).map { _ in anyValue(depth: depth + 1) }
            value.arrayValue = array
        default:
            var list = Opentelemetry_Proto_Common_V1_KeyValueList()
            list.values = (0..<int(0...4)).map { _ in keyValue(depth: depth + 1) }
            value.kvlistValue = list
        }
        return withUnknown(value)
    }

    mutating func keyValue(depth: Int = 0) -> PBKeyValue {
        var pair = PBKeyValue()
        pair.key = chance(0.3) ? ["service.name", "http.method", "mlflow.spanType", ""][int(0...3)] : string()
        if chance(0.95) { pair.value = anyValue(depth: depth) }
        return withUnknown(pair)
    }

    mutating func attributes(max: Int = 6) -> [PBKeyValue] {
        (0..<int(0...max)).map { _ in keyValue() }
    }

    mutating func smallCount() -> UInt32 {
        chance(0.7) ? 0 : UInt32.random(in: 0...UInt32.max, using: &random) >> UInt32(int(0...31))
    }

    mutating func span() -> PBSpan {
        var span = PBSpan()
        span.traceID = maybeBadID(16)
        span.spanID = maybeBadID(8)
        switch int(0...9) {
        case 0...2: break
        case 3: span.parentSpanID = Data(repeating: 0, count: 8)
        case 4: span.parentSpanID = maybeBadID(8)
        default: span.parentSpanID = id(8)
        }
        if chance(0.2) { span.traceState = "k=\(string())" }
        span.name = string(maxLength: 20)
        span.kind = PBSpan.SpanKind(rawValue: [0, 1, 2, 3, 4, 5, 5, 9, -3][int(0...8)])!
        span.startTimeUnixNano = UInt64.random(in: 0...UInt64.max, using: &random)
        span.endTimeUnixNano = chance(0.1) ? 0 : UInt64.random(in: 0...UInt64.max, using: &random)
        span.flags = chance(0.5) ? [0, 0x100, 0x300, 1, 0x301][int(0...4)] : UInt32.random(in: 0...UInt32.max, using: &random)
        span.attributes = attributes()
        span.droppedAttributesCount = smallCount()
        span.events = (0..<int(0...3)).map { _ in
            var event = PBEvent()
            event.timeUnixNano = UInt64.random(in: 0...UInt64.max, using: &random)
            event.name = string()
            event.attributes = attributes(max: 3)
            event.droppedAttributesCount = smallCount()
            return withUnknown(event)
        }
        span.droppedEventsCount = smallCount()
        span.links = (0..<int(0...2)).map { _ in
            var link = PBLink()
            link.traceID = maybeBadID(16)
            link.spanID = maybeBadID(8)
            if chance(0.3) { link.traceState = string() }
            link.attributes = attributes(max: 2)
            link.droppedAttributesCount = smallCount()
            link.flags = chance(0.5) ? 0 : UInt32.random(in: 0...UInt32.max, using: &random)
            return withUnknown(link)
        }
        span.droppedLinksCount = smallCount()
        if chance(0.8) {
            var status = PBStatus()
            status.code = PBStatus.StatusCode(rawValue: [0, 1, 2, 2, 7][int(0...4)])!
            if chance(0.3) { status.message = string() }
            span.status = withUnknown(status)
        }
        return withUnknown(span)
    }

    mutating func request(maxSpansPerScope: Int = 50) -> PBRequest {
        var request = PBRequest()
        request.resourceSpans = (0..<int(1...3)).map { _ in
            var resourceSpans = PBResourceSpans()
            if chance(0.9) {
                var resource = PBResource()
                resource.attributes = attributes()
                if chance(0.7) {
                    var name = PBKeyValue()
                    name.key = "service.name"
                    name.value.stringValue = "svc-\(string(maxLength: 4))"
                    resource.attributes.insert(name, at: int(0...resource.attributes.count))
                }
                resource.droppedAttributesCount = smallCount()
                resourceSpans.resource = withUnknown(resource)
            }
            resourceSpans.scopeSpans = (0..<int(0...3)).map { _ in
                var scopeSpans = PBScopeSpans()
                if chance(0.8) {
                    var scope = PBScope()
                    scope.name = string()
                    if chance(0.5) { scope.version = "1.\(int(0...9))" }
                    scope.attributes = attributes(max: 2)
                    scope.droppedAttributesCount = smallCount()
                    scopeSpans.scope = withUnknown(scope)
                }
                scopeSpans.spans = (0..<int(0...maxSpansPerScope)).map { _ in span() }
                if chance(0.3) { scopeSpans.schemaURL = "https://opentelemetry.io/schemas/1.\(int(0...30)).0" }
                return withUnknown(scopeSpans)
            }
            if chance(0.3) { resourceSpans.schemaURL = "https://opentelemetry.io/schemas/1.\(int(0...30)).0" }
            return withUnknown(resourceSpans)
        }
        return withUnknown(request)
    }
}
