import Deflate

/// Inflates `Content-Encoding: gzip` / `deflate` bodies with a hard output limit.
///
/// OTLP/HTTP: "the server MUST limit the size of the request body, including after decompression".
/// Inflation stops as soon as the output passes the limit, so a gzip bomb costs at most `limit`
/// bytes of memory and the time to produce them.
package enum BodyDecompressor {
    package enum Encoding: Sendable, Equatable {
        case identity
        case gzip
        case deflate

        /// Parses a `Content-Encoding` header value; nil when unsupported.
        package init?(header: String?) {
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

    package typealias Failure = Deflate.Failure

    /// Returns the inflated bytes, or throws `.tooLarge` once more than `limit` bytes come out.
    package static func decompress(_ input: [UInt8], encoding: Encoding, limit: Int) throws(Failure) -> [UInt8] {
        switch encoding {
        case .identity:
            guard input.count <= limit else { throw .tooLarge }
            return input
        case .gzip:
            return try Deflate.inflate(input, format: .gzip, limit: limit)
        case .deflate:
            // RFC 9110 "deflate" is the zlib format, but some clients send raw deflate: try both.
            do {
                return try Deflate.inflate(input, format: .zlib, limit: limit)
            } catch .corrupt {
                return try Deflate.inflate(input, format: .raw, limit: limit)
            }
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
