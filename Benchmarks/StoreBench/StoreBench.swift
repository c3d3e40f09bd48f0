import ArgumentParser
import Foundation
import OTLPWire
import StitchLoadKit
import TraceAssembler
import TraceEdge
import PostgresStore
import SQLiteStore
import TraceModel

/// The store's share of the end-to-end path, alone: the generated traffic decoded and grouped into
/// finished traces up front, then written into a fresh SQLite store in batches, as the sink writer
/// does. Reports spans/s and CPU per span (user and system).
@main
struct StoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stitch-bench-store",
        abstract: "Store micro-benchmark: finished traces written into a new SQLite store (or a PostgreSQL one), no receiver.")

    @Option(help: "Traces to write.") var traces = 10_000
    @Option(help: "Spans per trace.") var spansPerTrace = 20
    @Option(help: "Services per trace.") var services = 3
    @Option(help: "Bytes of each span's inputs and outputs.") var attrSize = 256
    @Option(help: "Traces per store write (the sink writer's batch).") var batch = 256
    @Option(help: "Batches in flight at once (the server's sink writer keeps two: one prepared while one is written).")
    var inFlight = 2
    @Option(help: "Directory for the store (a new file is created in it).") var dir = NSTemporaryDirectory()
    @Option(help: "A postgresql:// URL: write into the PostgreSQL store there instead (its tables are emptied first).")
    var db: String?
    @Flag(help: "Only convert the traces to rows (no database), on one thread.") var prepareOnly = false
    @Flag(help: "With --prepare-only: decode every span first (the general conversion) instead of converting from its bytes.")
    var general = false
    @Option(help: "With --prepare-only: passes over the traces (the fastest is reported).") var `repeat` = 5

    func run() async throws {
        var shape = LoadShape()
        shape.traces = traces
        shape.spansPerTrace = spansPerTrace
        shape.services = services
        shape.attributeSize = attrSize
        let plan = TrafficPlan(shape: shape)
        var byTrace: [TraceID: [SpanRecord]] = [:]
        var order: [TraceID] = []
        try plan.buildMain { request in
            let decoded = try OTLPTraceDecoder.decode(request.body, experimentID: nil)
            for span in decoded.spans {
                if byTrace[span.traceID] == nil { order.append(span.traceID) }
                byTrace[span.traceID, default: []].append(span)
            }
        }
        let finished = order.map {
            FinishedTrace(traceID: $0, spans: byTrace[$0]!, reason: .closed, isComplete: true, experimentID: nil)
        }
        byTrace = [:]
        let spanCount = finished.reduce(0) { $0 + $1.spans.count }
        let encoded = finished.reduce(0) { $0 + $1.encodedBytes }

        if prepareOnly {
            // The fastest of `repeat` passes: later passes run on memory the allocator already holds.
            var best = Double.infinity
            var contentBytes = 0
            for _ in 0..<max(1, `repeat`) {
                let cpuBefore = Self.cpuSeconds()
                contentBytes = StorePreparation.prepare(finished, direct: !general)
                let cpuAfter = Self.cpuSeconds()
                best = min(best, cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system)
            }
            print(String(format: "prepare (%@): %d spans, fastest of %d passes %.2f s CPU → %.0f spans/s on one thread, %.2f µs per span; %.0f B of content per span",
                         general ? "general" : "direct", spanCount, max(1, `repeat`), best, Double(spanCount) / best,
                         best / Double(spanCount) * 1e6, Double(contentBytes) / Double(max(spanCount, 1))))
            return
        }

        let path = URL(fileURLWithPath: dir).appendingPathComponent("stitch-bench-store-\(getpid()).db").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store: any TraceStore
        if let db {
            let postgres = try await PostgresTraceStore(url: PostgresURL(db))
            try await postgres.removeEveryTrace()
            store = postgres
        } else {
            store = try SQLiteTraceStore(path: path)
        }

        let cpuBefore = Self.cpuSeconds()
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            var index = 0
            while index < finished.count {
                if running == inFlight {
                    try await group.next()
                    running -= 1
                }
                let slice = Array(finished[index..<min(index + batch, finished.count)])
                group.addTask { try await store.consume(slice) }
                running += 1
                index += slice.count
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - started
        let cpuAfter = Self.cpuSeconds()
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let fileBytes = db == nil ? (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 : 0
        try await store.close()
        print("traffic: \(finished.count) traces × \(spansPerTrace) spans = \(spanCount) spans, \(encoded / max(spanCount, 1)) B encoded per span, batches of \(batch) traces, \(inFlight) in flight")
        print(String(format: "store:   %.2f s → %.0f spans/s; CPU per span (this process) %.1f µs user + %.1f µs system; database file %.0f MB (%.0f B per span)",
                     seconds, Double(spanCount) / seconds,
                     (cpuAfter.user - cpuBefore.user) / Double(spanCount) * 1e6,
                     (cpuAfter.system - cpuBefore.system) / Double(spanCount) * 1e6,
                     Double(fileBytes) / 1e6, Double(fileBytes) / Double(max(spanCount, 1))))
    }

    static func cpuSeconds() -> (user: Double, system: Double) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return (seconds(usage.ru_utime), seconds(usage.ru_stime))
    }
}
