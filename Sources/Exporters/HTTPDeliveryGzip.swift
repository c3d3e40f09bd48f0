import CZlib

/// gzip compression of request bodies (RFC 1952 framing through zlib's `deflateInit2` with
/// windowBits 15 + 16).
enum Gzip {
    /// zlib level 1: OTLP bodies (ids, repeated attribute keys) shrink well even at the fastest
    /// level, and the exporter runs beside the receiver on a CPU budget.
    static let level: Int32 = 1

    static func compress(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        // windowBits 31 = 15 (32 KiB window) + 16 (write a gzip header and trailer, not zlib's).
        let status = deflateInit2_(&stream, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY,
                                   ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        // Only fails for invalid parameters or out of memory; neither is recoverable here.
        precondition(status == Z_OK, "deflateInit2 failed: \(status)")
        defer { deflateEnd(&stream) }
        // deflateBound covers the gzip framing of this stream, so one Z_FINISH call completes it.
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
}
