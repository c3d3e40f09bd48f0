import CZlib

/// Inflates `Content-Encoding: gzip` / `deflate` bodies with a hard output limit.
///
/// OTLP/HTTP: "the server MUST limit the size of the request body, including after decompression".
/// Inflation stops as soon as the output passes the limit, so a gzip bomb costs at most `limit`
/// bytes of memory and the time to produce them.
public enum BodyDecompressor {
    public enum Encoding: Sendable, Equatable {
        case identity
        case gzip
        case deflate

        /// Parses a `Content-Encoding` header value; nil when unsupported.
        public init?(header: String?) {
            guard let raw = header?.trimmingASCIIWhitespace().lowercased(), !raw.isEmpty else {
                self = .identity
                return
            }
            switch raw {
            case "identity": self = .identity
            case "gzip", "x-gzip": self = .gzip
            case "deflate": self = .deflate
            default: return nil
            }
        }
    }

    public enum Failure: Error, Equatable {
        case tooLarge
        case corrupt(String)
    }

    /// Returns the inflated bytes, or throws `.tooLarge` once more than `limit` bytes come out.
    public static func decompress(_ input: [UInt8], encoding: Encoding, limit: Int) throws(Failure) -> [UInt8] {
        switch encoding {
        case .identity:
            guard input.count <= limit else { throw .tooLarge }
            return input
        case .gzip:
            // 16 + 15: gzip wrapper only.
            return try inflate(input, windowBits: 16 + 15, limit: limit)
        case .deflate:
            // RFC 9110 "deflate" is the zlib format, but some clients send raw deflate: try both.
            do {
                return try inflate(input, windowBits: 15, limit: limit)
            } catch .corrupt {
                return try inflate(input, windowBits: -15, limit: limit)
            }
        }
    }

    private static func inflate(_ input: [UInt8], windowBits: Int32, limit: Int) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .corrupt("zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }

        // Grow the output geometrically, starting from a guess, never past limit + 1.
        var output = [UInt8]()
        var capacity = min(max(input.count * 4, 4096), limit + 1)
        var produced = 0
        var status: Int32 = Z_OK
        let result: Result<Void, Failure> = input.withUnsafeBufferPointer { inputBuffer in
            stream.next_in = UnsafeMutablePointer(mutating: inputBuffer.baseAddress)
            stream.avail_in = UInt32(inputBuffer.count)
            while true {
                if produced == output.count {
                    if output.count > limit { return .failure(.tooLarge) }
                    output.append(contentsOf: repeatElement(0, count: capacity - output.count))
                    capacity = min(capacity * 2, limit + 1)
                    if capacity <= output.count { capacity = output.count + 1 }
                }
                let room = output.count - produced
                status = output.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress! + produced
                    stream.avail_out = UInt32(room)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                produced = output.count - Int(stream.avail_out)
                if produced > limit { return .failure(.tooLarge) }
                switch status {
                case Z_STREAM_END:
                    return .success(())
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    // No progress possible: either the output is full (grow) or the input ended early.
                    if stream.avail_out == 0 { continue }
                    return .failure(.corrupt("compressed body is truncated"))
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "code \(status)"
                    return .failure(.corrupt(message))
                }
            }
        }
        switch result {
        case .success:
            output.removeSubrange(produced...)
            return output
        case .failure(let failure):
            throw failure
        }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> Substring {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return slice
    }
}
