import Logging
import Metrics
import NIOCore
import NIOPosix
import OTLPWire
import Receiver
import StitchTestSupport
import Testing

@Suite("OTLP/HTTP server on a real socket")
struct OTLPHTTPServerTests {
    /// Starts a server on an ephemeral port, runs `body`, always shuts the server down.
    func withServer(maxBodySize: Int = 1 << 20, ingest: RecordingIngest = RecordingIngest(),
                    _ body: (Int, RecordingIngest) async throws -> Void) async throws {
        let server = OTLPHTTPServer(
            configuration: ReceiverConfiguration(host: "127.0.0.1", port: 0, maxBodySize: maxBodySize),
            ingest: ingest, routes: HealthRoutes(),
            logger: Logger(label: "test"), metrics: ReceiverMetrics(factory: NOOPMetricsHandler.instance))
        let address = try await server.start()
        do {
            try await body(try #require(address.port), ingest)
        } catch {
            await server.shutdown()
            throw error
        }
        await server.shutdown()
    }

    @Test("POST /v1/traces and POST / on one keep-alive connection")
    func keepAliveAndRootPath() async throws {
        try await withServer { port, ingest in
            let client = try RawHTTPClient(port: port)
            let first = try await client.request(method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")], body: try Fixtures.bytes("01"))
            #expect(first.status == 200)
            let second = try await client.request(method: "POST", path: "/", headers: [("Content-Type", "application/x-protobuf")], body: try Fixtures.bytes("02"))
            #expect(second.status == 200)
            #expect(second.header("Content-Type") == "application/x-protobuf")
            #expect(ingest.spanCount == 5)
        }
    }

    @Test("a body announced over the limit is refused with 413 before it is read, and the connection closes")
    func earlyTooLarge() async throws {
        try await withServer(maxBodySize: 1024) { port, ingest in
            let client = try RawHTTPClient(port: port)
            try await client.send(method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")], contentLength: 10 << 20)
            let response = try await client.readResponse()
            #expect(response.status == 413)
            #expect(response.header("Connection")?.lowercased() == "close")
            #expect(await client.isClosedByPeer())
            #expect(ingest.batches.isEmpty)
        }
    }

    @Test("a chunked body that grows over the limit is refused with 413")
    func chunkedTooLarge() async throws {
        try await withServer(maxBodySize: 1024) { port, ingest in
            let client = try RawHTTPClient(port: port)
            var request = Array("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            let chunk = [UInt8](repeating: 0x0A, count: 800)
            for _ in 0..<2 { request += Array("320\r\n".utf8) + chunk + Array("\r\n".utf8) }
            request += Array("0\r\n\r\n".utf8)
            try await client.write(request)
            #expect(try await client.readResponse().status == 413)
            #expect(ingest.batches.isEmpty)
        }
    }

    @Test("405, 415 and 404 keep the connection usable; /healthz is served")
    func errorsKeepConnection() async throws {
        try await withServer { port, ingest in
            let client = try RawHTTPClient(port: port)
            let get = try await client.request(method: "GET", path: "/v1/traces")
            #expect(get.status == 405)
            #expect(get.header("Allow") == "POST")
            let text = try await client.request(method: "POST", path: "/v1/traces", headers: [("Content-Type", "text/plain")], body: Array("hello".utf8))
            #expect(text.status == 415)
            let missing = try await client.request(method: "GET", path: "/nope")
            #expect(missing.status == 404)
            #expect(missing.text.contains("no route for /nope"), "a 404 says what was wrong: \(missing.text)")
            let health = try await client.request(method: "GET", path: "/healthz")
            #expect(health.status == 200)
            #expect(health.text == "ok\n")
            let ok = try await client.request(method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")], body: try Fixtures.bytes("04"))
            #expect(ok.status == 200)
            #expect(ingest.spanCount == 1)
        }
    }

    @Test("a malformed request does not disturb other connections")
    func malformedIsolated() async throws {
        try await withServer { port, ingest in
            let bad = try RawHTTPClient(port: port)
            let good = try RawHTTPClient(port: port)
            let refused = try await bad.request(method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")], body: [0xFF, 0xFF, 0xFF])
            #expect(refused.status == 400)
            try await bad.write(Array("GARBAGE\r\n\r\n".utf8))
            let accepted = try await good.request(method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/x-protobuf")], body: try Fixtures.bytes("05"))
            #expect(accepted.status == 200)
            #expect(ingest.spanCount == 2)
        }
    }
}
