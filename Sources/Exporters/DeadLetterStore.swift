import Foundation
import Logging
import Metrics
import OTLPWire
import Synchronization
import TraceEdge

package struct DeadLetterConfiguration: Sendable, Equatable {
    /// Directory of this destination's dead letters (created if missing), e.g. `<queue directory>/dead-letters`.
    package var directory: String
    /// Bytes on disk at most (default 256 MiB); past it, the oldest entries are removed and counted.
    package var maxBytes: Int
    /// The server's response is kept up to this many bytes of UTF-8 (default 4 KiB).
    package var maxResponseBytes: Int
    package var fsync: FsyncPolicy

    package init(directory: String, maxBytes: Int = 256 << 20, maxResponseBytes: Int = 4096, fsync: FsyncPolicy = .batch) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.maxResponseBytes = maxResponseBytes
        self.fsync = fsync
    }
}

/// One batch a destination refused for good, as stored.
package struct DeadLetterEntry: Sendable, Equatable, Codable {
    /// Increasing per store, never reused; also the entry's file names.
    package var id: UInt64
    /// When the batch was set aside, milliseconds since 1970.
    package var timeMs: Int64
    /// The same instant as ISO 8601 (UTC), for people reading the file.
    package var time: String
    package var destination: String
    /// Why the destination refused it, e.g. "HTTP 400 Bad Request".
    package var reason: String
    /// The server's response body, cut at `maxResponseBytes` (on a character boundary).
    package var response: String
    package var responseTruncated: Bool
    /// The batch's trace ids, 32 lowercase hex characters each.
    package var traceIDs: [String]
    package var spanCount: Int
    /// Name (in the store's directory) of the file holding the batch as an OTLP `ExportTraceServiceRequest`.
    package var requestFile: String
    package var requestBytes: Int
}

/// Batches that a destination refused permanently (a 4xx other than 429, an unknown MLflow experiment),
/// kept on disk with the server's answer so that an operator can see why and replay them.
///
/// Format: per entry, two files in the store's directory, named by the entry's id (20 digits, so that
/// names sort by age):
/// - `<id>.pb`: the batch's spans as an OTLP/protobuf `ExportTraceServiceRequest`, exactly the body a
///   destination would have been sent. Replay with e.g.
///   `curl -H 'Content-Type: application/x-protobuf' --data-binary @<id>.pb http://collector:4318/v1/traces`.
/// - `<id>.json`: one JSON object, the `DeadLetterEntry` (`id`, `timeMs`, `time`, `destination`, `reason`,
///   `response`, `responseTruncated`, `traceIDs`, `spanCount`, `requestFile`, `requestBytes`).
///
/// The `.pb` file is written first and the `.json` file last, by an atomic rename: an entry exists once
/// its `.json` file does (a `.pb` without one, left by a crash, is removed at the next start).
/// Bounded in bytes: the oldest entries are removed to make room, and counted
/// (`stitch_dead_letters_dropped_total{reason="rotated"}`); an entry bigger than the whole bound is not
/// kept (`reason="too_large"`). File I/O runs on the store's own thread (`FileIOThread`), never on the
/// caller's; opening recovers on the calling thread, once, before the pipeline runs. `shutdown()` stops it.
package final class DeadLetterStore: Sendable {
    package let destination: String
    package let configuration: DeadLetterConfiguration
    /// Locked only by work on `io`, so never awaited by others.
    private let state: Mutex<State>
    private let io: FileIOThread
    private let logger: Logger
    private let metrics: StoreMetrics
    private let now: @Sendable () -> Int64

    private struct State {
        /// Oldest first.
        var entries: [(id: UInt64, bytes: Int)]
        var bytes: Int
        var nextID: UInt64
    }

    private struct StoreMetrics {
        let rotated: Counter
        let tooLarge: Counter
        let storedBytes: Gauge
        let storedEntries: Gauge

        init(destination: String, factory: any MetricsFactory) {
            let label = "stitch_dead_letters_dropped_total"
            rotated = Counter(label: label, dimensions: [("destination", destination), ("reason", "rotated")], factory: factory)
            tooLarge = Counter(label: label, dimensions: [("destination", destination), ("reason", "too_large")], factory: factory)
            storedBytes = Gauge(label: "stitch_dead_letter_bytes", dimensions: [("destination", destination)], factory: factory)
            storedEntries = Gauge(label: "stitch_dead_letter_entries", dimensions: [("destination", destination)], factory: factory)
        }

        func report(_ state: State) {
            storedBytes.record(state.bytes)
            storedEntries.record(state.entries.count)
        }
    }

    package convenience init(
        destination: String, configuration: DeadLetterConfiguration, logger: Logger, metrics: any MetricsFactory
    ) throws {
        try self.init(destination: destination, configuration: configuration, logger: logger, metrics: metrics,
                      now: PersistentQueue.wallClockMilliseconds)
    }

    /// Opens (or creates) the store and enforces its bound on what is already there.
    package init(
        destination: String, configuration: DeadLetterConfiguration, logger: Logger, metrics: any MetricsFactory,
        now: @escaping @Sendable () -> Int64
    ) throws {
        guard configuration.maxBytes > 0, configuration.maxResponseBytes >= 0, !configuration.directory.isEmpty else {
            throw QueueError("dead letters of \(destination): directory must be set, maxBytes positive, maxResponseBytes not negative")
        }
        self.destination = destination
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "destination"] = "\(destination)"
        self.logger = logger
        self.metrics = StoreMetrics(destination: destination, factory: metrics)
        self.now = now
        var state = try Self.recover(configuration.directory)
        Self.rotate(&state, toFit: 0, configuration: configuration, metrics: self.metrics)
        self.metrics.report(state)
        self.state = Mutex(state)
        io = FileIOThread(name: "dead letters of \(destination)")
    }

    /// Stops the I/O thread once the work already submitted is done; appends after it fail.
    package func shutdown() async {
        await io.shutdown()
    }

    /// Sets a batch aside. Returns the stored entry, or nil when the batch alone exceeds `maxBytes`
    /// (logged and counted, not kept).
    @discardableResult
    package func append(traces: [FinishedTrace], reason: String, response: String) async throws -> DeadLetterEntry? {
        let request = OTLPTraceEncoder.encodeRequest(traces.flatMap(\.spans))
        let (kept, truncated) = Self.truncate(response, toUTF8Bytes: configuration.maxResponseBytes)
        let timeMs = now()
        return try await io.run { [self] () throws(QueueError) -> DeadLetterEntry? in
            try store(request, of: traces, reason: reason, response: (kept, truncated), timeMs: timeMs)
        }
    }

    /// Writes one entry (on `io`), rotating out the oldest to make room.
    private func store(
        _ request: [UInt8], of traces: [FinishedTrace], reason: String, response: (kept: String, truncated: Bool),
        timeMs: Int64
    ) throws(QueueError) -> DeadLetterEntry? {
        try state.withLock { state throws(QueueError) -> DeadLetterEntry? in
            let name = FileSystem.sortableName(state.nextID)
            let entry = DeadLetterEntry(
                id: state.nextID, timeMs: timeMs, time: Self.iso8601(timeMs), destination: destination,
                reason: reason, response: response.kept, responseTruncated: response.truncated,
                traceIDs: traces.map(\.traceID.hex), spanCount: traces.reduce(0) { $0 + $1.spans.count },
                requestFile: name + ".pb", requestBytes: request.count)
            let metadata = try Self.encode(entry)
            let size = request.count + metadata.count
            guard size <= configuration.maxBytes else {
                metrics.tooLarge.increment()
                logger.error("dead letter larger than the dead-letter store; not kept", metadata: [
                    "dead_letter.bytes": "\(size)", "dead_letter.reason": "\(reason)",
                    "dead_letter.traces": "\(entry.traceIDs.count)",
                ])
                return nil
            }
            Self.rotate(&state, toFit: size, configuration: configuration, metrics: metrics)
            let syncs = configuration.fsync == .batch
            let requestPath = path(entry.requestFile)
            do throws(QueueError) {
                // The request first: the metadata's rename is what makes the entry exist.
                try FileSystem.write(requestPath, request, sync: syncs)
                try FileSystem.replace(path(name + ".json"), with: metadata, sync: syncs)
            } catch {
                try? FileSystem.remove(requestPath)
                throw error
            }
            state.entries.append((state.nextID, size))
            state.bytes += size
            state.nextID += 1
            metrics.report(state)
            return entry
        }
    }

    /// The stored entries, oldest first.
    package func entries() async throws -> [DeadLetterEntry] {
        try await io.run { [self] () throws(QueueError) in try readEntries() }
    }

    private func readEntries() throws(QueueError) -> [DeadLetterEntry] {
        let ids = state.withLock { $0.entries.map(\.id) }
        var entries: [DeadLetterEntry] = []
        for id in ids {
            // An entry rotated out meanwhile is simply not listed.
            guard let bytes = try FileSystem.contents(of: path(FileSystem.sortableName(id) + ".json")) else { continue }
            do {
                entries.append(try JSONDecoder().decode(DeadLetterEntry.self, from: Data(bytes)))
            } catch {
                throw QueueError("dead letter \(id) of \(destination): unreadable metadata: \(error)")
            }
        }
        return entries
    }

    /// The OTLP `ExportTraceServiceRequest` bytes of `entry`.
    package func request(of entry: DeadLetterEntry) async throws -> [UInt8] {
        let path = path(entry.requestFile)
        let gone = "dead letter \(entry.id) of \(destination): \(entry.requestFile) is gone"
        return try await io.run { () throws(QueueError) in
            guard let bytes = try FileSystem.contents(of: path) else { throw QueueError(gone) }
            return bytes
        }
    }

    /// Bytes of the stored entries (both files of each). Waits for an append under way: not for hot paths.
    package var storedBytes: Int { state.withLock { $0.bytes } }

    // MARK: Private

    private func path(_ name: String) -> String { configuration.directory + "/" + name }

    private static func encode(_ entry: DeadLetterEntry) throws(QueueError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(entry)) + [UInt8(ascii: "\n")]
        } catch {
            throw QueueError("cannot encode dead letter \(entry.id): \(error)")
        }
    }

    /// Removes the oldest entries until `bytes` more fit.
    private static func rotate(_ state: inout State, toFit bytes: Int, configuration: DeadLetterConfiguration, metrics: StoreMetrics) {
        while !state.entries.isEmpty, state.bytes + bytes > configuration.maxBytes {
            let oldest = state.entries.removeFirst()
            let name = configuration.directory + "/" + FileSystem.sortableName(oldest.id)
            // The metadata first: without it the entry no longer exists, even if the removal of the
            // request file does not happen.
            try? FileSystem.remove(name + ".json")
            try? FileSystem.remove(name + ".pb")
            state.bytes -= oldest.bytes
            metrics.rotated.increment()
        }
    }

    /// Finds the entries on disk; removes request files without metadata and unfinished renames.
    private static func recover(_ directory: String) throws(QueueError) -> State {
        try FileSystem.makeDirectory(directory)
        let names = try FileSystem.list(directory)
        var sizes: [UInt64: Int] = [:]
        var metadata: Set<UInt64> = []
        for name in names {
            let path = directory + "/" + name
            if name.hasSuffix(".tmp") {
                try FileSystem.remove(path)
                continue
            }
            let parts = name.split(separator: ".", maxSplits: 1)
            guard parts.count == 2, let id = UInt64(parts[0]), parts[1] == "json" || parts[1] == "pb" else { continue }
            if parts[1] == "json" { metadata.insert(id) }
            sizes[id, default: 0] += try fileSize(path)
        }
        for id in sizes.keys where !metadata.contains(id) {
            // A crash between the request file and its metadata.
            try FileSystem.remove(directory + "/" + FileSystem.sortableName(id) + ".pb")
        }
        let entries = metadata.sorted().map { (id: $0, bytes: sizes[$0] ?? 0) }
        return State(entries: entries, bytes: entries.reduce(0) { $0 + $1.bytes }, nextID: (metadata.max() ?? 0) + 1)
    }

    private static func fileSize(_ path: String) throws(QueueError) -> Int {
        guard let file = try DurableFile.openIfPresent(path) else { return 0 }
        defer { file.close() }
        return try file.size()
    }

    /// The longest prefix of `text` of at most `limit` UTF-8 bytes that ends on a character boundary.
    static func truncate(_ text: String, toUTF8Bytes limit: Int) -> (String, truncated: Bool) {
        let utf8 = Array(text.utf8)
        guard utf8.count > limit else { return (text, false) }
        var end = limit
        // Back off continuation bytes (10xxxxxx) so that no character is cut in half.
        while end > 0, utf8[end] & 0xC0 == 0x80 { end -= 1 }
        return (String(decoding: utf8[..<end], as: UTF8.self), true)
    }

    private static func iso8601(_ ms: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
