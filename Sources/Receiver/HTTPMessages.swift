import OTLPWire

/// A request as the receiver's routes see it (transport details stripped).
package struct HTTPRequestSummary: Sendable {
    package var method: String
    /// The path without the query string.
    package var path: String
    /// Decoded query parameters; the last value wins for repeated names.
    package var query: [String: String]
    package var headers: [(name: String, value: String)]

    package init(method: String, path: String, query: [String: String], headers: [(name: String, value: String)]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
    }

    /// The first value of a header, case-insensitive.
    package func header(_ name: String) -> String? {
        Self.header(name, in: headers)
    }

    /// The first value of header `name` in `headers`, case-insensitive.
    package static func header(_ name: String, in headers: [(name: String, value: String)]) -> String? {
        headers.first { $0.name.equalsIgnoringCase(name) }?.value
    }

    /// Splits a request target such as `/api/v1/traces?max_results=5` into path and query.
    package static func split(target: String) -> (path: String, query: [String: String]) {
        guard let mark = target.firstIndex(of: "?") else { return (target, [:]) }
        let path = String(target[..<mark])
        var query: [String: String] = [:]
        for pair in target[target.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecode(parts[0])
            query[name] = parts.count > 1 ? percentDecode(parts[1]) : ""
        }
        return (path, query)
    }

    static func percentDecode(_ text: Substring) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                bytes.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                if let high = iterator.next(), let low = iterator.next(),
                   let h = HexCoding.nibble(high), let l = HexCoding.nibble(low) {
                    bytes.append(h << 4 | l)
                } else {
                    bytes.append(byte)
                }
            default:
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A complete response.
package struct HTTPResponseValue: Sendable {
    package var status: Int
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    package init(status: Int, contentType: String, body: [UInt8], headers: [(name: String, value: String)] = []) {
        self.status = status
        self.headers = [("Content-Type", contentType)] + headers
        self.body = body
    }

    package static func text(_ status: Int, _ text: String) -> HTTPResponseValue {
        HTTPResponseValue(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
    }

    package static func json(_ status: Int, _ body: [UInt8]) -> HTTPResponseValue {
        HTTPResponseValue(status: status, contentType: "application/json", body: body)
    }
}

/// Serves the non-OTLP routes on the receiver's port (health, metrics, query API).
package protocol HTTPRouteHandler: Sendable {
    /// Returns nil when the path is not one of this handler's routes (the receiver answers 404).
    func handle(_ request: HTTPRequestSummary) async -> HTTPResponseValue?
}

extension String {
    func equalsIgnoringCase(_ other: String) -> Bool {
        self.utf8.count == other.utf8.count && self.lowercased() == other.lowercased()
    }
}
