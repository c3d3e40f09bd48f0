import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// How a request body is compressed.
package enum HTTPCompression: String, Sendable, Codable, CaseIterable {
    /// `Content-Encoding: gzip` (the OTLP exporters' usual choice; every OTLP server accepts it).
    case gzip
    /// Sent as is.
    case none
}

/// A destination's configuration is invalid; lists every problem at once.
package struct DestinationConfigurationError: Error, Sendable, CustomStringConvertible {
    /// Each as `field: what is wrong`.
    package var problems: [String]
    package var destination: String

    package init(destination: String, problems: [String]) {
        self.destination = destination
        self.problems = problems
    }

    package var description: String {
        "destination \(destination): invalid configuration: " + problems.joined(separator: "; ")
    }

    /// Throws when there is any problem.
    static func check(_ problems: [String], destination: String) throws(DestinationConfigurationError) {
        guard problems.isEmpty else { throw DestinationConfigurationError(destination: destination, problems: problems) }
    }
}

/// One answer from a server, with its body read up to `HTTPDeliveryClient.maxResponseBytes`.
struct HTTPAnswer: Sendable {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]
    /// The body was longer than the read limit; `body` holds its beginning.
    var bodyTruncated: Bool

    init(status: Int, headers: HTTPHeaders = [:], body: [UInt8] = [], bodyTruncated: Bool = false) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bodyTruncated = bodyTruncated
    }

    var isSuccess: Bool { (200..<300).contains(status) }

    /// The server's `Retry-After`, relative to `now`, if it sent one that parses.
    func retryAfter(now: Date) -> Duration? {
        headers.first(name: "retry-after").flatMap { RetryAfter.parse($0, now: now) }
    }

    /// What the server said, for logs and dead letters: the status, then the `google.rpc.Status`
    /// message of a protobuf body, or the body as text, or its first bytes in hex; at most 4 KiB.
    var summary: String {
        let reason = HTTPResponseStatus(statusCode: status).reasonPhrase
        var text = "HTTP \(status) \(reason)"
        let contentType = headers.first(name: "content-type")?.lowercased() ?? ""
        if body.isEmpty { return text }
        if contentType.contains("protobuf"), let message = ProtobufResponses.statusMessage(body) {
            text += ": " + message
        } else if let utf8 = String(validating: body, as: UTF8.self), !utf8.unicodeScalars.contains(where: { $0.value < 0x09 }) {
            text += ": " + utf8
        } else {
            text += ": <\(body.count) bytes> " + body.prefix(256).map { String($0, radix: 16) }.joined(separator: " ")
        }
        if bodyTruncated { text += " …(truncated)" }
        return Self.bounded(text, to: 4096)
    }

    static func bounded(_ text: String, to limit: Int) -> String {
        guard text.utf8.count > limit else { return text }
        var result = ""
        for character in text {
            if result.utf8.count + character.utf8.count > limit - 3 { break }
            result.append(character)
        }
        return result + "…"
    }
}

/// Why no answer came back.
struct TransportFailure: Error, Sendable {
    var reason: String
    /// The request itself is unusable (bad URL); retrying cannot help.
    var isPermanent: Bool

    /// Connection failures and timeouts are transient (OTLP spec, "OTLP/HTTP Connection").
    var outcome: DeliveryOutcome {
        isPermanent ? .permanent(reason: reason, response: "") : .retryable(reason: reason, after: nil)
    }
}

/// One pooled, keep-alive `HTTPClient` per destination, and the bounded request/response cycle
/// both HTTP destinations use.
///
/// Redirects are refused (a redirect would carry the destination's authorization headers to a
/// host the user did not name); `https://` URLs use TLS with the system's trust roots; nothing
/// here logs headers or bodies.
struct HTTPDeliveryClient: Sendable {
    /// OTLP spec, "OTLP/HTTP Response": clients limit the response bodies they read (4 MiB).
    static let maxResponseBytes = 4 << 20

    let client: HTTPClient
    let timeout: Duration

    init(timeout: Duration) {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: TimeAmount(min(timeout, .seconds(10))), read: TimeAmount(timeout)),
            decompression: .disabled)
        // A refused connection must come back as a failure at once, so that the sender's back-off
        // (not the client's internal reconnect loop) decides when to try again.
        configuration.connectionPool.retryConnectionEstablishment = false
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.timeout = timeout
    }

    /// Sends one request and reads the answer; every failure to get an answer (refused, reset,
    /// timed out, TLS) is a `TransportFailure`.
    func send(method: HTTPMethod, url: String, headers: HTTPHeaders, body: [UInt8]) async -> Result<HTTPAnswer, TransportFailure> {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers = headers
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await client.execute(request, timeout: TimeAmount(timeout))
            var collected: [UInt8] = []
            var truncated = false
            for try await chunk in response.body {
                let room = Self.maxResponseBytes - collected.count
                if chunk.readableBytes > room {
                    collected += chunk.readableBytesView.prefix(room)
                    truncated = true
                    // Stop reading: the rest is dropped with the connection, not buffered.
                    break
                }
                collected += chunk.readableBytesView
            }
            return .success(HTTPAnswer(status: Int(response.status.code), headers: response.headers,
                                       body: collected, bodyTruncated: truncated))
        } catch let error as HTTPClientError {
            switch error {
            case .invalidURL, .emptyHost, .emptyScheme, .missingSocketPath:
                return .failure(TransportFailure(reason: "unusable URL \(url): \(error)", isPermanent: true))
            case .deadlineExceeded, .readTimeout, .connectTimeout:
                return .failure(TransportFailure(reason: "timed out (\(timeout)): \(error)", isPermanent: false))
            default:
                return .failure(TransportFailure(reason: "connection failed: \(error)", isPermanent: false))
            }
        } catch {
            return .failure(TransportFailure(reason: "connection failed: \(error)", isPermanent: false))
        }
    }

    func shutdown() async {
        try? await client.shutdown()
    }
}

/// Checks shared by the HTTP destinations' configurations.
enum HTTPDeliveryValidation {
    /// Headers the destinations set themselves; configuring them would corrupt the request.
    static let reservedHeaders: Set<String> = ["content-type", "content-encoding", "content-length", "host", "transfer-encoding"]

    /// Problems with a base URL: it must be absolute `http`/`https` with a host.
    static func urlProblems(_ value: String, field: String) -> [String] {
        guard let url = URL(string: value), let scheme = url.scheme?.lowercased() else {
            return ["\(field): '\(value)' is not a URL"]
        }
        var problems: [String] = []
        if scheme != "http" && scheme != "https" { problems.append("\(field): scheme must be http or https, not '\(scheme)'") }
        if (url.host ?? "").isEmpty { problems.append("\(field): '\(value)' has no host") }
        if url.query != nil || url.fragment != nil { problems.append("\(field): must not have a query or fragment") }
        return problems
    }

    /// Problems with extra headers (names are RFC 9110 tokens, values have no control characters).
    /// Values are never quoted in the messages: they may be secrets.
    static func headerProblems(_ headers: [String: String], field: String) -> [String] {
        var problems: [String] = []
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            let isToken = !name.isEmpty && name.unicodeScalars.allSatisfy { scalar in
                scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "!#$%&'*+-.^_`|~".unicodeScalars.contains(scalar))
            }
            if !isToken { problems.append("\(field): '\(name)' is not a valid header name") }
            if reservedHeaders.contains(name.lowercased()) { problems.append("\(field): '\(name)' is set by the destination itself") }
            if value.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }) {
                problems.append("\(field): the value of '\(name)' contains control characters")
            }
        }
        return problems
    }

    static func timeoutProblems(_ timeout: Duration, field: String) -> [String] {
        timeout > .zero ? [] : ["\(field): must be positive"]
    }

    /// A request (HTTP body, gRPC message) between 1 KiB and the OTLP hard limit of 64 MiB.
    static func requestBytesProblems(_ bytes: Int, field: String) -> [String] {
        (1024...RequestPlanner.hardLimit).contains(bytes) ? [] : ["\(field): must be between 1KiB and 64MiB"]
    }

    /// The configured extra headers (in a stable order) plus `user-agent`, and a body `content-type`.
    static func requestHeaders(configured: [String: String], contentType: String, compression: HTTPCompression) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for (name, value) in configured.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        headers.replaceOrAdd(name: "user-agent", value: "stitch")
        headers.replaceOrAdd(name: "content-type", value: contentType)
        if compression == .gzip { headers.replaceOrAdd(name: "content-encoding", value: "gzip") }
        return headers
    }

    /// `headers` with values replaced, for descriptions that may end up in logs.
    static func redacted(_ headers: [String: String]) -> String {
        "[" + headers.keys.sorted().map { "\($0): <redacted>" }.joined(separator: ", ") + "]"
    }
}
