import NIOCore

/// What the load generator needs from an HTTP/1.1 response.
struct ResponseSummary: Equatable {
    var status: Int
    /// `Retry-After` in seconds, when the server sent one as a number.
    var retryAfterSeconds: Double?
    /// The server said `Connection: close`.
    var closes: Bool
}

struct ResponseParseError: Error, CustomStringConvertible {
    var description: String
}

/// An incremental HTTP/1.1 response reader: bodies are skipped, not kept (Content-Length or chunked).
///
/// Hand-written rather than NIOHTTP1's decoder so that the generator's per-request cost stays a few
/// hundred nanoseconds: requests are written as pre-built bytes, and only the status line and three
/// headers of the answer matter.
struct ResponseParser {
    private var buffer = ByteBuffer()

    mutating func append(_ bytes: inout ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next complete response, or nil until more bytes arrive.
    mutating func next() throws(ResponseParseError) -> ResponseSummary? {
        let view = buffer.readableBytesView
        guard let headerEnd = Self.find(view, [13, 10, 13, 10]) else {
            if view.count > 64 * 1024 { throw ResponseParseError(description: "response head over 64 KiB") }
            return nil
        }
        let headText = String(decoding: view[view.startIndex..<headerEnd], as: UTF8.self)
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        guard let statusLine = lines.popFirst() else { throw ResponseParseError(description: "empty response") }
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw ResponseParseError(description: "bad status line: \(statusLine.prefix(80))")
        }
        var contentLength = 0
        var chunked = false
        var summary = ResponseSummary(status: status, retryAfterSeconds: nil, closes: parts[0] == "HTTP/1.0")
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingSpaces()
            switch name {
            case "content-length": contentLength = Int(value) ?? 0
            case "transfer-encoding": chunked = value.lowercased().contains("chunked")
            case "retry-after": summary.retryAfterSeconds = Double(value)
            case "connection":
                let lowered = value.lowercased()
                if lowered.contains("close") { summary.closes = true }
                if lowered.contains("keep-alive") { summary.closes = false }
            default: break
            }
        }
        let bodyStart = headerEnd + 4
        let consumed: Int
        if chunked {
            guard let end = Self.chunkedBodyEnd(view, from: bodyStart) else { return nil }
            consumed = end - view.startIndex
        } else {
            guard view.endIndex - bodyStart >= contentLength else { return nil }
            consumed = bodyStart + contentLength - view.startIndex
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        if buffer.readableBytes == 0 { buffer.clear() }
        return summary
    }

    private static func find(_ view: ByteBufferView, _ needle: [UInt8]) -> Int? {
        guard view.count >= needle.count else { return nil }
        var index = view.startIndex
        let last = view.endIndex - needle.count
        while index <= last {
            if view[index] == needle[0] && view[index + 1] == needle[1] && view[index + 2] == needle[2] && view[index + 3] == needle[3] {
                return index
            }
            index += 1
        }
        return nil
    }

    /// Index just past a complete chunked body starting at `start`, or nil if incomplete.
    private static func chunkedBodyEnd(_ view: ByteBufferView, from start: Int) -> Int? {
        var position = start
        while true {
            guard let lineEnd = view[position...].firstIndex(of: 13), lineEnd + 1 < view.endIndex else { return nil }
            let sizeText = String(decoding: view[position..<lineEnd], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else { return nil }
            position = lineEnd + 2
            if size == 0 {
                // Skip trailers up to the empty line.
                while true {
                    guard let end = view[position...].firstIndex(of: 13), end + 1 < view.endIndex else { return nil }
                    if end == position { return end + 2 }
                    position = end + 2
                }
            }
            position += size + 2
            guard position <= view.endIndex else { return nil }
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var result = self
        while result.first == " " || result.first == "\t" { result.removeFirst() }
        while result.last == " " || result.last == "\t" { result.removeLast() }
        return result
    }
}
