import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A deliberately small HTTP/1.1 client over a blocking socket, so that receiver tests exercise the
/// real wire (keep-alive, early 413 with Connection: close) without another HTTP stack.
///
/// Every call is `async` and does its blocking socket work on a Dispatch thread: blocking a thread of
/// Swift's cooperative pool (2 threads on this machine) would starve the server under test.
package final class RawHTTPClient: Sendable {
    package struct Response: Sendable {
        package var status: Int
        package var headers: [(name: String, value: String)]
        package var body: [UInt8]
        package func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
        package var text: String { String(decoding: body, as: UTF8.self) }
    }

    package struct ClientError: Error, CustomStringConvertible {
        package var description: String
    }

    private let fd: Int32
    private let buffer = Mutex<[UInt8]>([])

    package init(port: Int, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError(description: "socket() failed") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = Self.loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw ClientError(description: "connect to 127.0.0.1:\(port) failed")
        }
    }

    /// 127.0.0.1:`port` (0: any free port).
    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// A port p such that p and p + 1 are both free right now (checked by binding both), taken
    /// below Linux's ephemeral range (32768 and up): there, a port free now can become the source
    /// port of any outgoing connection, such as a member's first attempts to reach a peer that is
    /// still starting.
    package static func freeAdjacentPorts() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20_000..<32_000)
            guard let first = bound(port) else { continue }
            defer { close(first) }
            if let second = bound(port + 1) {
                close(second)
                return port
            }
        }
        throw ClientError(description: "no two adjacent free ports")
    }

    /// A socket bound to 127.0.0.1:`port`, nil when the port is taken.
    private static func bound(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    deinit { close(fd) }

    /// Binds an ephemeral 127.0.0.1 port, closes it and returns its number (free right now).
    package static func listenAndClose() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError(description: "socket() failed") }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw ClientError(description: "bind failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Sends one request; `contentLength` overrides the header (to announce a body that is not sent).
    package func send(method: String, path: String, headers: [(String, String)] = [], body: [UInt8] = [],
                     contentLength: Int? = nil) async throws {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(contentLength ?? body.count)\r\n\r\n"
        try await write(Array(head.utf8) + body)
    }

    package func write(_ bytes: [UInt8]) async throws {
        try await offload { try self.writeBlocking(bytes) }
    }

    package func request(method: String, path: String, headers: [(String, String)] = [], body: [UInt8] = []) async throws -> Response {
        try await send(method: method, path: path, headers: headers, body: body)
        return try await readResponse()
    }

    package func readResponse() async throws -> Response {
        try await offload { try self.buffer.withLock { try self.readResponseBlocking(&$0) } }
    }

    /// True when the server closed the connection (a read returns 0 bytes).
    package func isClosedByPeer() async -> Bool {
        (try? await offload { () -> Bool in
            var byte: UInt8 = 0
            return recv(self.fd, &byte, 1, 0) == 0
        }) ?? false
    }

    private func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    private func writeBlocking(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw ClientError(description: "send failed") }
            offset += sent
        }
    }

    /// Reads one response (Content-Length framed).
    private func readResponseBlocking(_ buffer: inout [UInt8]) throws -> Response {
        let headerEnd: Int = try {
            while true {
                if let end = Self.find([13, 10, 13, 10], in: buffer) { return end }
                try fill(&buffer)
            }
        }()
        let headText = String(decoding: buffer[..<headerEnd], as: UTF8.self)
        buffer.removeFirst(headerEnd + 4)
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw ClientError(description: "bad status line")
        }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: " "))
        }
        let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) } ?? 0
        while buffer.count < length { try fill(&buffer) }
        let body = Array(buffer[..<length])
        buffer.removeFirst(length)
        return Response(status: status, headers: headers, body: body)
    }

    private func fill(_ buffer: inout [UInt8]) throws {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { throw ClientError(description: "connection closed or timed out") }
        buffer += chunk[..<count]
    }

    private static func find(_ pattern: [UInt8], in buffer: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for index in 0...(buffer.count - pattern.count) where buffer[index..<index + pattern.count].elementsEqual(pattern) {
            return index
        }
        return nil
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        var slice = Substring(self)
        while slice.first == set { slice.removeFirst() }
        while slice.last == set { slice.removeLast() }
        return String(slice)
    }
}
