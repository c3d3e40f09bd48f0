import Foundation
import OTLPModel
import SwiftProtobuf
import Testing
import OTLPWire

@Suite("OTLP responses")
struct ResponsesTests {
    @Test("full success: empty protobuf body, {} in JSON")
    func success() throws {
        let protobuf = OTLPResponses.exportResponse(rejectedSpans: 0, errorMessage: nil, json: false)
        #expect(try PBResponse(serializedBytes: protobuf) == PBResponse())
        #expect(!(try PBResponse(serializedBytes: protobuf)).hasPartialSuccess)
        #expect(OTLPResponses.exportResponse(rejectedSpans: 0, errorMessage: nil, json: true) == Array("{}".utf8))
    }

    @Test("partial success in protobuf, read by swift-protobuf")
    func partialProtobuf() throws {
        let message = "resource_spans[0].scope_spans[0].spans[1]: trace_id must be 16 bytes, got 8"
        let response = try PBResponse(serializedBytes: OTLPResponses.exportResponse(rejectedSpans: 3, errorMessage: message, json: false))
        #expect(response.hasPartialSuccess)
        #expect(response.partialSuccess.rejectedSpans == 3)
        #expect(response.partialSuccess.errorMessage == message)
    }

    @Test("partial success in JSON: rejectedSpans as a string, message escaped")
    func partialJSON() throws {
        let body = OTLPResponses.exportResponse(rejectedSpans: 3, errorMessage: "bad \"id\"\n", json: true)
        #expect(String(decoding: body, as: UTF8.self) == #"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"bad \"id\"\n"}}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(body)) as? [String: [String: String]]
        #expect(parsed?["partialSuccess"]?["errorMessage"] == "bad \"id\"\n")
        // A warning without rejections is still a partial success (OTLP spec).
        #expect(String(decoding: OTLPResponses.exportResponse(rejectedSpans: 0, errorMessage: "w", json: true), as: UTF8.self)
            == #"{"partialSuccess":{"errorMessage":"w"}}"#)
    }

    @Test("google.rpc.Status in protobuf and JSON")
    func status() throws {
        let status = try PBRPCStatus(serializedBytes: OTLPResponses.status(code: 3, message: "body is not a trace request", json: false))
        #expect(status.code == 3)
        #expect(status.message == "body is not a trace request")
        #expect(status.details.isEmpty)
        #expect(String(decoding: OTLPResponses.status(code: 8, message: "retry \\ later", json: true), as: UTF8.self)
            == #"{"code":8,"message":"retry \\ later"}"#)
        let negative = try PBRPCStatus(serializedBytes: OTLPResponses.status(code: -1, message: "", json: false))
        #expect(negative.code == -1)
    }
}
