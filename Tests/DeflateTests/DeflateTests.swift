import Deflate
import Testing

@Suite struct DeflateTests {
    static let body: [UInt8] = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 % 251 &* 7 ^ $0 >> 5) }

    @Test("every format and level round-trips, and the stream is the format's", arguments: Deflate.Format.allCases)
    func roundTrip(format: Deflate.Format) throws {
        for level: Int32 in [1, 6, 9] {
            let compressed = Deflate.compress(Self.body, format: format, level: level)
            #expect(compressed.count < Self.body.count)
            #expect(try Deflate.inflate(compressed, format: format, limit: Self.body.count) == Self.body)
        }
        let gzip = Deflate.compress(Self.body, format: .gzip)
        #expect(gzip.prefix(2) == [0x1F, 0x8B])
        #expect(Deflate.compress([], format: format).isEmpty == false)
        #expect(try Deflate.inflate(Deflate.compress([], format: format), format: format, limit: 0) == [])
    }

    @Test("the limit is exact: limit bytes inflate, one less throws tooLarge")
    func limit() throws {
        let bomb = Deflate.compress([UInt8](repeating: 0, count: 1 << 20), format: .gzip, level: 9)
        #expect(try Deflate.inflate(bomb, format: .gzip, limit: 1 << 20).count == 1 << 20)
        #expect(throws: Deflate.Failure.tooLarge) { try Deflate.inflate(bomb, format: .gzip, limit: (1 << 20) - 1) }
    }

    @Test("truncated, corrupt or of another format: corrupt, never a crash")
    func corrupt() {
        let gzip = Deflate.compress(Self.body, format: .gzip)
        for cut in [0, 1, 10, gzip.count / 2, gzip.count - 1] {
            #expect(throws: Deflate.Failure.self) { try Deflate.inflate(Array(gzip.prefix(cut)), format: .gzip, limit: 1 << 20) }
        }
        var flipped = gzip
        flipped[20] ^= 0xFF
        #expect(throws: Deflate.Failure.self) { try Deflate.inflate(flipped, format: .gzip, limit: 1 << 20) }
        #expect(throws: Deflate.Failure.self) { try Deflate.inflate(gzip, format: .zlib, limit: 1 << 20) }
        #expect(throws: Deflate.Failure.self) { try Deflate.inflate(Array("not compressed".utf8), format: .raw, limit: 1 << 20) }
    }
}
