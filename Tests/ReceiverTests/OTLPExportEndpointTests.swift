import Deflate
import Foundation
import OTLPWire
import Receiver
import StitchTestSupport
import Testing

@Suite("OTLP/HTTP endpoint: answers per the OTLP/HTTP spec")
struct OTLPExportEndpointTests {
    @Test("a protobuf export is taken whole and answered 200 with an empty ExportTraceServiceResponse")
    func acceptsProtobuf() async throws {
        let ingest = RecordingIngest()
        let response = await makeEndpoint(ingest: ingest).handle(headers: protobufHeaders, body: try Fixtures.bytes("01"))
        #expect(response.status == 200)
        #expect(response.headers.first { $0.name == "Content-Type" }?.value == "application/x-protobuf")
        #expect(response.body.isEmpty)  // no partial_success field when nothing was rejected
        #expect(ingest.spanCount == 3)
        #expect(ingest.batches.first?.payload.experimentID == nil)
    }

    @Test("x-mlflow-experiment-id selects the experiment; a non-numeric one is a 400")
    func experimentHeader() async throws {
        let ingest = RecordingIngest()
        let endpoint = makeEndpoint(ingest: ingest)
        let ok = await endpoint.handle(headers: protobufHeaders + [("x-mlflow-experiment-id", "7")], body: try Fixtures.bytes("02"))
        #expect(ok.status == 200)
        #expect(ingest.batches.last?.payload.experimentID == "7")
        let bad = await endpoint.handle(headers: protobufHeaders + [("X-MLflow-Experiment-Id", "seven")], body: try Fixtures.bytes("02"))
        #expect(bad.status == 400)
        #expect(ingest.batches.count == 1)
    }

    @Test("gzip, deflate (zlib and raw) bodies are inflated")
    func compressedBodies() async throws {
        let raw = try Fixtures.bytes("05")
        for (encoding, format) in [("gzip", Deflate.Format.gzip), ("deflate", .zlib), ("deflate", .raw)] {
            let ingest = RecordingIngest()
            let body = Deflate.compress(raw, format: format, level: 6)
            let response = await makeEndpoint(ingest: ingest).handle(headers: protobufHeaders + [("Content-Encoding", encoding)], body: body)
            #expect(response.status == 200, "\(encoding) \(format)")
            #expect(ingest.spanCount == 2)
        }
    }

    @Test("the captured gzip request from MLflow's exporter decodes")
    func capturedGzip() async throws {
        let ingest = RecordingIngest()
        let response = await makeEndpoint(ingest: ingest).handle(
            headers: protobufHeaders + [("Content-Encoding", "gzip")], body: try Fixtures.bytes("06"))
        #expect(response.status == 200)
        #expect(ingest.spanCount == 1)
        #expect(ingest.batches.first?.spans.first?.serviceName == "agent-client")
    }

    @Test("an unsupported Content-Encoding is a 415 naming what is accepted")
    func unsupportedEncoding() async throws {
        let ingest = RecordingIngest()
        let response = await makeEndpoint(ingest: ingest).handle(headers: protobufHeaders + [("Content-Encoding", "br")], body: try Fixtures.bytes("01"))
        #expect(response.status == 415)
        let endpoint = makeEndpoint(ingest: ingest)
        let early = endpoint.precheck(method: "POST", path: "/v1/traces", headers: protobufHeaders + [("Content-Encoding", "zstd")], contentLength: 10)
        #expect(early?.httpStatus == 415)
        #expect(early?.message.contains("gzip, deflate, identity") == true)
        #expect(ingest.batches.isEmpty)
    }

    @Test("other content types are 415, wrong methods 405, in the precheck")
    func precheck() throws {
        let endpoint = makeEndpoint(ingest: RecordingIngest())
        #expect(endpoint.precheck(method: "POST", path: "/v1/traces", headers: [("Content-Type", "text/plain")], contentLength: 3)?.httpStatus == 415)
        #expect(endpoint.precheck(method: "POST", path: "/v1/traces", headers: [], contentLength: 3)?.httpStatus == 415)
        #expect(endpoint.precheck(method: "GET", path: "/v1/traces", headers: protobufHeaders, contentLength: nil)?.httpStatus == 405)
        #expect(endpoint.precheck(method: "POST", path: "/v1/traces", headers: [("Content-Type", "application/json; charset=utf-8")], contentLength: 3) == nil)
        #expect(endpoint.precheck(method: "POST", path: "/", headers: protobufHeaders, contentLength: 3) == nil)
    }

    @Test("over the limit on the wire or after inflating is a 413; a gzip bomb is refused")
    func bodyLimits() async throws {
        let ingest = RecordingIngest()
        let endpoint = makeEndpoint(ingest: ingest, maxBodySize: 64 * 1024)
        #expect(endpoint.precheck(method: "POST", path: "/v1/traces", headers: protobufHeaders, contentLength: 64 * 1024 + 1)?.httpStatus == 413)
        // 16 MiB of zeros compresses to ~16 KiB: under the limit compressed, far over it inflated.
        let bomb = Deflate.compress([UInt8](repeating: 0, count: 16 << 20), format: .gzip, level: 6)
        #expect(bomb.count < 64 * 1024)
        let response = await endpoint.handle(headers: protobufHeaders + [("Content-Encoding", "gzip")], body: bomb)
        #expect(response.status == 413)
        #expect(ingest.batches.isEmpty)
    }

    @Test("an undecodable body is a 400 with a google.rpc.Status body in the request's content type")
    func malformed() async throws {
        let ingest = RecordingIngest()
        let endpoint = makeEndpoint(ingest: ingest)
        let truncated = Array(try Fixtures.bytes("01").dropLast(7))
        let response = await endpoint.handle(headers: protobufHeaders, body: truncated)
        #expect(response.status == 400)
        #expect(response.headers.first { $0.name == "Content-Type" }?.value == "application/x-protobuf")
        #expect(!response.body.isEmpty)
        let json = await endpoint.handle(headers: jsonHeaders, body: Array("{\"resourceSpans\": [".utf8))
        #expect(json.status == 400)
        #expect(json.headers.first { $0.name == "Content-Type" }?.value == "application/json")
        let object = try JSONSerialization.jsonObject(with: Data(json.body)) as? [String: Any]
        #expect((object?["message"] as? String)?.isEmpty == false)
        #expect(ingest.batches.isEmpty)
        let corruptGzip = await endpoint.handle(headers: protobufHeaders + [("Content-Encoding", "gzip")], body: [0x1f, 0x8b, 1, 2, 3])
        #expect(corruptGzip.status == 400)
    }

    @Test("an empty request is a success")
    func empty() async throws {
        let ingest = RecordingIngest()
        let response = await makeEndpoint(ingest: ingest).handle(headers: protobufHeaders, body: [])
        #expect(response.status == 200)
        #expect(ingest.batches.isEmpty)
    }

    @Test("bad spans are rejected one by one with partial_success; good spans of the request are kept")
    func partialSuccess() async throws {
        let ingest = RecordingIngest()
        let good = "5b8efff798038103d269b633813fc60c"
        let body = """
        {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeSpans":[{"scope":{"name":"t"},"spans":[
            {"traceId":"\(good)","spanId":"eee19b7ec3c1b174","name":"ok","kind":1,"startTimeUnixNano":"1","endTimeUnixNano":"2"},
            {"traceId":"\(good)","spanId":"0000000000000000","name":"zero span id","startTimeUnixNano":"1","endTimeUnixNano":"2"},
            {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175","name":"zero trace id"}
          ]}]}]}
        """
        let response = await makeEndpoint(ingest: ingest).handle(headers: jsonHeaders, body: Array(body.utf8))
        #expect(response.status == 200)
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        let partial = object?["partialSuccess"] as? [String: Any]
        #expect("\(partial?["rejectedSpans"] ?? "")" == "2")
        #expect((partial?["errorMessage"] as? String)?.contains("span") == true)
        #expect(ingest.spanCount == 1)
        #expect(ingest.batches.first?.spans.first?.traceID.hex == good)
    }

    @Test("OTLP/JSON with upper-case hex ids and with base64 ids (a known client bug) is accepted")
    func jsonIds() async throws {
        let hexTrace = "5B8EFFF798038103D269B633813FC60C"
        let traceBytes: [UInt8] = [0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c]
        let spanBytes: [UInt8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        let base64Trace = Data(traceBytes).base64EncodedString()
        let base64Span = Data(spanBytes).base64EncodedString()
        #expect(base64Trace.count == 24 && base64Span.count == 12)
        for (traceID, spanID) in [(hexTrace, "EEE19B7EC3C1B174"), (base64Trace, base64Span)] {
            let ingest = RecordingIngest()
            let body = """
            {"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"\(traceID)","spanId":"\(spanID)","name":"s",
              "startTimeUnixNano":1700000000000000000,"endTimeUnixNano":"1700000000000000001","kind":2,"unknownField":{"x":1}}]}]}]}
            """
            let response = await makeEndpoint(ingest: ingest).handle(headers: jsonHeaders, body: Array(body.utf8))
            #expect(response.status == 200, "\(traceID)")
            let span = try #require(ingest.batches.first?.spans.first)
            #expect(span.traceID.bytes == traceBytes)
            #expect(span.spanID.bytes == spanBytes)
            #expect(span.kind == 2)
            #expect(span.startTimeUnixNano == 1_700_000_000_000_000_000)
            #expect(span.endTimeUnixNano == 1_700_000_000_000_000_001)
        }
    }

    @Test("a refusal from the pipeline becomes 503/429 with Retry-After and nothing is kept")
    func backpressure() async throws {
        for error in [ReceiverError.unavailable("full", retryAfterSeconds: 3), .throttled("slow down", retryAfterSeconds: 2)] {
            let ingest = RecordingIngest(decision: .refused(error))
            let metrics = RecordingMetrics()
            let response = await makeEndpoint(ingest: ingest, metrics: metrics)
                .handle(headers: protobufHeaders, body: try Fixtures.bytes("01"))
            #expect(response.status == error.httpStatus)
            #expect(response.headers.first { $0.name == "Retry-After" }?.value == String(error.retryAfterSeconds ?? -1))
            // Each refusal counted by its reason.
            #expect(metrics["stitch_requests_refused_total{protocol=http,reason=\(error.reasonLabel)}"] == 1)
            #expect(metrics["stitch_http_requests_total{status=\(error.httpStatus)}"] == 1)
            #expect(metrics["stitch_spans_refused_total{protocol=http}"] == 3)
        }
    }
}
