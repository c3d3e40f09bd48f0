import CZlib

/// The one zlib binding of the package: gzip, zlib and raw deflate, compressed in one call and
/// inflated with a hard output limit. The receiver (request bodies), the exporters (gzip request
/// bodies), the tests and the load generator all go through it.
package enum Deflate {
    /// The framing around the deflate stream.
    package enum Format: Sendable, Equatable, CaseIterable {
        /// RFC 1952 (`Content-Encoding: gzip`, `grpc-encoding: gzip`).
        case gzip
        /// RFC 1950 (what RFC 9110 calls `deflate`).
        case zlib
        /// RFC 1951 without framing (what some clients send as `deflate`).
        case raw

        /// zlib's `windowBits` for this framing with a 32 KiB window.
        var windowBits: Int32 {
            switch self {
            case .gzip: 16 + 15
            case .zlib: 15
            case .raw: -15
            }
        }
    }

    /// Why inflating stopped.
    package enum Failure: Error, Sendable, Equatable {
        /// More than the limit would come out (a "zip bomb" costs at most the limit).
        case tooLarge
        /// Not a valid stream of the format, or cut short; the message is zlib's.
        case corrupt(String)
    }

    /// zlib level 1: OTLP bodies (ids, repeated attribute keys) shrink well even at the fastest level,
    /// and compressing runs beside the receiver on a CPU budget.
    package static let fastest: Int32 = 1

    /// `input` compressed whole in `format` at `level` (1 fastest … 9 smallest).
    package static func compress(_ input: [UInt8], format: Format = .gzip, level: Int32 = fastest) -> [UInt8] {
        var stream = z_stream()
        let status = deflateInit2_(&stream, level, Z_DEFLATED, format.windowBits, 8, Z_DEFAULT_STRATEGY,
                                   ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        // Only fails for invalid parameters or out of memory; neither is recoverable here.
        precondition(status == Z_OK, "deflateInit2 failed: \(status)")
        defer { deflateEnd(&stream) }
        // deflateBound covers the framing of this stream, so one Z_FINISH call completes it.
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))))
        let produced = input.withUnsafeBufferPointer { inBuffer in
            output.withUnsafeMutableBufferPointer { outBuffer -> Int in
                stream.next_in = UnsafeMutablePointer(mutating: inBuffer.baseAddress)
                stream.avail_in = UInt32(inBuffer.count)
                stream.next_out = outBuffer.baseAddress
                stream.avail_out = UInt32(outBuffer.count)
                let result = deflate(&stream, Z_FINISH)
                precondition(result == Z_STREAM_END, "deflate did not finish within deflateBound: \(result)")
                return outBuffer.count - Int(stream.avail_out)
            }
        }
        output.removeSubrange(produced...)
        return output
    }

    /// `input` inflated; throws `.tooLarge` as soon as more than `limit` bytes would come out, and
    /// `.corrupt` for anything that is not one whole stream of `format`.
    package static func inflate(_ input: [UInt8], format: Format, limit: Int) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, format.windowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
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
