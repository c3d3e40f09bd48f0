import CZlib
import OTLPWire
import TraceEdge

/// The on-disk encoding of the persistent queue (format version 1). All integers little-endian.
///
/// A segment file `segment-<first sequence, 20 digits>.stq` is the 8-byte magic `STITCHQ1` followed by
/// records, each one trace:
///
/// ```
/// record  := u32 payload length | u32 CRC-32 (IEEE, as zlib's crc32) of payload | payload
/// payload := u8 version (1) | u8 flags (bit 0 isComplete, bit 1 has experiment id)
///            | u64 sequence | i64 enqueued at (ms since 1970) | 16 bytes trace id
///            | u8 reason length | reason (ReleaseReason raw value, UTF-8)
///            | u32 experiment id length | experiment id (UTF-8; length 0 and flag clear when absent)
///            | the OTLP ExportTraceServiceRequest of the trace's spans (rest of the payload)
/// ```
///
/// Sequences inside a segment are consecutive, starting at the one in the file name. A record whose
/// frame runs past the end of the file (a write cut short by a crash) or whose checksum or header does
/// not match ends the readable part of its segment.
enum QueueRecord {
    static let segmentMagic: [UInt8] = Array("STITCHQ1".utf8)
    static let segmentHeaderSize = segmentMagic.count
    static let frameSize = 8
    static let version: UInt8 = 1
    /// version, flags, sequence, enqueued at, trace id.
    static let fixedHeaderSize = 1 + 1 + 8 + 8 + 16

    /// What an append needs of a trace, prepared before taking the queue's lock (the OTLP encoding is
    /// the expensive part).
    struct Prepared {
        var traceID: TraceID
        var reason: [UInt8]
        var isComplete: Bool
        var experimentID: [UInt8]?
        var request: [UInt8]

        init(_ trace: FinishedTrace) {
            traceID = trace.traceID
            reason = Array(trace.reason.rawValue.utf8)
            isComplete = trace.isComplete
            experimentID = trace.experimentID.map { Array($0.utf8) }
            request = OTLPTraceEncoder.encodeRequest(trace.spans)
        }

        var payloadSize: Int {
            QueueRecord.fixedHeaderSize + 1 + reason.count + 4 + (experimentID?.count ?? 0) + request.count
        }

        /// Bytes on disk, framing included.
        var recordSize: Int { QueueRecord.frameSize + payloadSize }
    }

    /// The header fields of a stored record.
    struct Header: Equatable {
        var sequence: UInt64
        var enqueuedAtMs: Int64
        var traceID: TraceID
        var reason: ReleaseReason
        var isComplete: Bool
        var experimentID: String?
    }

    /// Where the append time lies in a record (frame included): after the frame, version, flags and sequence.
    static let enqueuedAtRange = (frameSize + 10)..<(frameSize + 18)

    /// The append time from the first bytes of a record (at least `enqueuedAtRange.upperBound` of them),
    /// without verifying the record.
    static func enqueuedAtMs(inRecordPrefix bytes: ArraySlice<UInt8>) -> Int64 {
        Int64(bitPattern: bytes.loadLittleEndian(UInt64.self, at: bytes.startIndex + enqueuedAtRange.lowerBound))
    }

    /// Appends the framed record of `prepared` to `buffer`.
    static func write(_ prepared: Prepared, sequence: UInt64, enqueuedAtMs: Int64, into buffer: inout [UInt8]) {
        let payloadStart = buffer.count + frameSize
        buffer.appendLittleEndian(UInt32(prepared.payloadSize))
        buffer.appendLittleEndian(UInt32(0))  // checksum, filled in below
        buffer.append(version)
        buffer.append((prepared.isComplete ? 1 : 0) | (prepared.experimentID != nil ? 2 : 0))
        buffer.appendLittleEndian(sequence)
        buffer.appendLittleEndian(UInt64(bitPattern: enqueuedAtMs))
        // The trace id as its 16 W3C bytes (big-endian halves).
        withUnsafeBytes(of: prepared.traceID.high.bigEndian) { buffer.append(contentsOf: $0) }
        withUnsafeBytes(of: prepared.traceID.low.bigEndian) { buffer.append(contentsOf: $0) }
        buffer.append(UInt8(prepared.reason.count))
        buffer.append(contentsOf: prepared.reason)
        buffer.appendLittleEndian(UInt32(prepared.experimentID?.count ?? 0))
        if let experimentID = prepared.experimentID { buffer.append(contentsOf: experimentID) }
        buffer.append(contentsOf: prepared.request)
        let checksum = CRC32.checksum(buffer[payloadStart...])
        buffer.storeLittleEndian(checksum, at: payloadStart - 4)
    }

    /// What lies at an offset of a segment's bytes.
    enum Frame: Equatable {
        /// A record whose checksum matches; `payload` is its byte range.
        case record(payload: Range<Int>)
        /// Nothing more: the offset is the end of the bytes.
        case end
        /// The frame is cut short or does not check out; `problem` says how.
        case invalid(problem: String)
    }

    /// Reads the frame at `offset` of `bytes` and verifies its checksum.
    static func frame(in bytes: ArraySlice<UInt8>, at offset: Int) -> Frame {
        let available = bytes.endIndex - offset
        if available == 0 { return .end }
        guard available >= frameSize else {
            return .invalid(problem: "record frame cut short (\(available) of \(frameSize) bytes)")
        }
        let length = Int(bytes.loadLittleEndian(UInt32.self, at: offset))
        let stored = bytes.loadLittleEndian(UInt32.self, at: offset + 4)
        guard length >= fixedHeaderSize else {
            return .invalid(problem: "record length \(length) is shorter than a record header")
        }
        guard length <= available - frameSize else {
            return .invalid(problem: "record of \(length) bytes runs past the end (\(available - frameSize) left)")
        }
        let payload = (offset + frameSize)..<(offset + frameSize + length)
        let computed = CRC32.checksum(bytes[payload])
        guard computed == stored else {
            return .invalid(problem: "checksum mismatch (stored \(stored), computed \(computed))")
        }
        return .record(payload: payload)
    }

    /// Parses the header of a checksummed payload; returns it and the range of the OTLP request bytes.
    static func header(of bytes: ArraySlice<UInt8>) throws(QueueError) -> (header: Header, request: Range<Int>) {
        var position = bytes.startIndex
        func need(_ count: Int) throws(QueueError) {
            guard bytes.endIndex - position >= count else { throw QueueError("record header cut short") }
        }
        try need(fixedHeaderSize + 1)
        guard bytes[position] == version else {
            throw QueueError("record format version \(bytes[position]) is not supported (expected \(version))")
        }
        let flags = bytes[position + 1]
        let sequence = bytes.loadLittleEndian(UInt64.self, at: position + 2)
        let enqueuedAtMs = Int64(bitPattern: bytes.loadLittleEndian(UInt64.self, at: position + 10))
        // The 16 W3C bytes are two big-endian halves (not the generic `TraceID(bytes:)`: this is per record).
        let traceID = TraceID(
            high: bytes.loadLittleEndian(UInt64.self, at: position + 18).byteSwapped,
            low: bytes.loadLittleEndian(UInt64.self, at: position + 26).byteSwapped)
        position += fixedHeaderSize
        let reasonLength = Int(bytes[position])
        position += 1
        try need(reasonLength + 4)
        let reasonText = String(decoding: bytes[position..<(position + reasonLength)], as: UTF8.self)
        guard let reason = ReleaseReason(rawValue: reasonText) else {
            throw QueueError("record names unknown release reason \"\(reasonText)\"")
        }
        position += reasonLength
        let experimentLength = Int(bytes.loadLittleEndian(UInt32.self, at: position))
        position += 4
        try need(experimentLength)
        let experimentID = flags & 2 != 0
            ? String(decoding: bytes[position..<(position + experimentLength)], as: UTF8.self) : nil
        position += experimentLength
        let header = Header(
            sequence: sequence, enqueuedAtMs: enqueuedAtMs, traceID: traceID,
            reason: reason, isComplete: flags & 1 != 0, experimentID: experimentID)
        return (header, position..<bytes.endIndex)
    }

    /// The trace stored in a checksummed payload: its spans decoded from the stored OTLP request (whose
    /// bytes become the spans' payload, so resources and span bytes are those that were appended).
    static func decode(_ payload: ArraySlice<UInt8>) throws(QueueError) -> QueuedTrace {
        let (header, requestRange) = try header(of: payload)
        let batch: DecodedBatch
        do {
            batch = try OTLPTraceDecoder.decode(Array(payload[requestRange]), experimentID: header.experimentID)
        } catch {
            throw QueueError("record \(header.sequence): stored OTLP request does not decode: \(error)")
        }
        let trace = FinishedTrace(
            traceID: header.traceID, spans: batch.spans, reason: header.reason,
            isComplete: header.isComplete, experimentID: header.experimentID)
        return QueuedTrace(sequence: header.sequence, trace: trace, enqueuedAtMs: header.enqueuedAtMs)
    }
}

/// A small file holding one sequence number (the acknowledgement watermark), replaced atomically:
/// magic `STQMARK1` | u64 sequence | u32 CRC-32 of the preceding 16 bytes.
enum QueueMarkFile {
    static let magic: [UInt8] = Array("STQMARK1".utf8)
    static let size = 20

    static func encode(_ sequence: UInt64) -> [UInt8] {
        var bytes = magic
        bytes.appendLittleEndian(sequence)
        bytes.appendLittleEndian(CRC32.checksum(bytes[...]))
        return bytes
    }

    /// nil when the bytes are not a mark file written by `encode`.
    static func decode(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == size, Array(bytes[0..<8]) == magic,
              CRC32.checksum(bytes[0..<16]) == bytes[...].loadLittleEndian(UInt32.self, at: 16) else { return nil }
        return bytes[...].loadLittleEndian(UInt64.self, at: 8)
    }
}

/// CRC-32 (IEEE 802.3 polynomial), computed by zlib.
enum CRC32 {
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBufferPointer { buffer in
            var crc = crc32(0, nil, 0)
            var start = 0
            // zlib takes a 32-bit length.
            while start < buffer.count {
                let count = min(buffer.count - start, Int(UInt32.max))
                crc = crc32(crc, buffer.baseAddress! + start, uInt(count))
                start += count
            }
            return UInt32(truncatingIfNeeded: crc)
        }
    }
}

extension Array where Element == UInt8 {
    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    mutating func storeLittleEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { bytes in
            for (index, byte) in bytes.enumerated() { self[offset + index] = byte }
        }
    }
}

extension ArraySlice where Element == UInt8 {
    func loadLittleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size {
            value |= T(self[offset + index]) << (index * 8)
        }
        return value
    }
}
