import Foundation
import StitchTestSupport
import Testing
@testable import SQLiteStore
@testable import TraceModel

// Expected texts were printed by CPython 3.11's `json.dumps` / `repr` (the values MLflow writes).
@Suite struct PythonJSONTests {
    @Test(arguments: [
        (1e15, "1000000000000000.0"), (9.5e15, "9500000000000000.0"), (1e16, "1e+16"),
        (123456789012345678.0, "1.2345678901234568e+17"), (0.0001, "0.0001"), (0.00001, "1e-05"), (1e-7, "1e-07"),
        (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"), (-0.0, "-0.0"), (100.0, "100.0"),
        (1e22, "1e+22"), (0.1, "0.1"), (-1.5e-05, "-1.5e-05"), (2.5, "2.5"), (1234567.125, "1234567.125"),
        (18014398509481984.0, "1.8014398509481984e+16"), (123.456e-10, "1.23456e-08"),
        (Double.nan, "NaN"), (Double.infinity, "Infinity"), (-Double.infinity, "-Infinity"),
    ])
    func floatsAsPythonRepr(value: Double, expected: String) {
        #expect(PyJSONWriter.pythonFloatRepr(value) == expected)
    }

    @Test func escapingWithAndWithoutEnsureASCII() {
        let value = PyJSON.object(PyObject([
            ("a", .array([.string("é😀"), .string("\u{7F}\u{01}\u{2028}"), .null, .bool(true)])),
        ]))
        #expect(PyJSONWriter.dump(value, ensureASCII: true) == #"{"a": ["\u00e9\ud83d\ude00", "\u007f\u0001\u2028", null, true]}"#)
        #expect(PyJSONWriter.dump(value, ensureASCII: false) == "{\"a\": [\"é😀\", \"\u{7F}\\u0001\u{2028}\", null, true]}")
        #expect(PyJSONWriter.dump(.string("q\"\\\n\r\t\u{08}\u{0C}"), ensureASCII: false) == #""q\"\\\n\r\t\b\f""#)
    }

    @Test func escapingFindsEveryCharacterAtEveryPositionOfTheWordScan() {
        // The writer skips eight bytes at a time; a character to escape in any lane, or in the tail,
        // must still be found (compared with escaping one character at a time).
        func reference(_ text: String) -> String {
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case "\u{08}": out += "\\b"
                case "\u{0C}": out += "\\f"
                case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        // Long texts cross the writer's 512-byte output blocks: escapes dense and sparse, runs longer
        // than a block, escapes at every offset near a block's end.
        var random = SplitMix64(seed: 11)
        for density in [0, 1, 2, 10, 100, 600] {
            for length in [505, 511, 512, 513, 1_024, 3_000] {
                let text = String((0..<length).map { _ -> Character in
                    guard density > 0, random.next() % UInt64(density) == 0 else { return "x" }
                    return ["\"", "\\", "\n", "\u{01}", "é"][Int(random.next() % 5)]
                })
                #expect(PyJSONWriter.dump(.string(text), ensureASCII: false) == reference(text), "density \(density) length \(length)")
            }
        }
        for special in ["\"", "\\", "\n", "\u{01}", "\u{1F}"] {
            for length in 0...20 {
                for position in 0...length {
                    var characters = Array(repeating: Character("a"), count: length)
                    characters.insert(Character(special), at: position)
                    let text = "é" + String(characters) + " ~\u{7F}"
                    #expect(PyJSONWriter.dump(.string(text), ensureASCII: false) == reference(text))
                }
            }
        }
    }

    @Test func objectsKeepFirstPositionAndLastValue() {
        var object = PyObject()
        object["a"] = .int(1)
        object["b"] = .int(2)
        object["a"] = .int(3)
        #expect(PyJSONWriter.dump(.object(object), ensureASCII: false) == #"{"a": 3, "b": 2}"#)
        #expect(PyJSONParser.parse(#"{"x": 1, "y": 2, "x": 5}"#) == .object(PyObject([("x", .int(5)), ("y", .int(2))])))
    }

    @Test func parserAcceptsWhatPythonAccepts() {
        #expect(PyJSONParser.parse(" [1, 2.5, -0, 1e3, \"a\\u00e9\\ud83d\\ude00\"] ") ==
            .array([.int(1), .double(2.5), .int(0), .double(1000), .string("aé😀")]))
        if case .double(let value)? = PyJSONParser.parse("NaN") { #expect(value.isNaN) } else { Issue.record("NaN") }
        if case .double(let value)? = PyJSONParser.parse("-Infinity") { #expect(value == -.infinity) } else { Issue.record("-Infinity") }
        #expect(PyJSONParser.parse("123456789012345678901234567890") == .bigInt("123456789012345678901234567890"))
        #expect(PyJSONParser.parse("true") == .bool(true))
        #expect(PyJSONParser.parse("\"\\/\"") == .string("/"))
    }

    @Test(arguments: ["", "01", "1.", ".5", "-", "1e", "[1,]", "{\"a\" 1}", "\"a\u{01}\"", "\"\\x\"", "[1] 2", "tru", "{'a': 1}"])
    func parserRejectsWhatPythonRejects(text: String) {
        #expect(PyJSONParser.parse(text) == nil)
    }

    @Test(arguments: [
        "", "01", "1.", "[1,]", "\"a\u{01}\"", "tru", "{'a': 1}", "[1] 2", // rejected
        " {\"a\": [1, {\"b\": null}]} ", "[\"x\\\"y\", 2.5e3]", "\"\\u00e9\\ud83d\"", "\"plain\"", "-0", "NaN",
        "123456789012345678901234567890", "true", "null", "\"\\x\"", String(repeating: "[", count: 600),
    ])
    func kindAgreesWithParse(text: String) {
        // The checking walk must accept exactly what the building parse accepts.
        var text = text
        let kind = text.withUTF8 { PyJSONParser.kind(utf8: $0) }
        #expect(kind == PyJSONParser.parse(text).map(PyJSONKind.init))
    }

    /// Strings are passed eight bytes at a time: a control character, an escape or the closing quote
    /// must be seen at every offset within and across those blocks, and bytes ≥ 0x80 pass through.
    @Test func stringsAreReadAtEveryOffset() {
        for length in [7, 8, 9, 15, 16, 17, 31] {
            for offset in 0..<length {
                let before = String(repeating: "a", count: offset)
                let after = String(repeating: "é", count: (length - offset) / 2) + String(repeating: "b", count: (length - offset) % 2)
                #expect(PyJSONParser.parse("\"\(before)\(after)\"") == .string(before + after))
                #expect(PyJSONParser.parse("\"\(before)\u{1F}\(after)\"") == nil, "control at \(offset) of \(length)")
                #expect(PyJSONParser.parse("\"\(before)\\n\(after)\"") == .string(before + "\n" + after))
                #expect(PyJSONParser.parse("\"\(before)\\q\(after)\"") == nil, "bad escape at \(offset) of \(length)")
                #expect(PyJSONParser.parse("\"\(before)\"\(after)\"") == nil, "inner quote at \(offset) of \(length)")
                var object = "{\"\(before)\": \"\(after)\"}"
                let kind = object.withUTF8 { PyJSONParser.kind(utf8: $0) }
                #expect(kind == .object)
            }
        }
    }

    @Test(arguments: [Int64.min, -1, 0, 7, 10, 1_700_000_000_123_456_789, Int64.max])
    func integersAsStr(value: Int64) {
        var out: [UInt8] = []
        PyJSONWriter.appendInt(value, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == String(value))
    }

    @Test func bytesAsPythonRepr() {
        #expect(MLflowAttributes.pythonBytesRepr(Array("\u{00}ab'c".utf8) + [0xFF, 0x09, 0x0A, 0x0D, 0x5C]) == #"b"\x00ab'c\xff\t\n\r\\""#)
        #expect(MLflowAttributes.pythonBytesRepr(Array("q\"x'".utf8)) == #"b'q"x\''"#)
        #expect(MLflowAttributes.pythonBytesRepr(Array("only'single".utf8)) == #"b"only'single""#)
    }
}
