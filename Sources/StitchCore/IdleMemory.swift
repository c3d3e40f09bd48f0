#if os(Linux)
import CMalloc
#endif
import Logging
import Metrics
import ServiceLifecycle
import TraceAssembler
import TraceEdge
import SQLiteStore
import TraceModel

/// Decides when to hand memory back: once nothing has arrived for a whole interval (the activity
/// counts unchanged), nothing is buffered and every queue is written, and only once per quiet spell.
struct IdleMemoryState {
    private var last: [Int]?
    private var releasedAt: [Int]?

    /// One look per interval: running totals of what arrived (spans received, traces enqueued per
    /// destination) and whether everything has been written out; true when memory should be released now.
    mutating func observe(counts: [Int], drained: Bool) -> Bool {
        defer { last = counts }
        guard drained, counts == last, counts != releasedAt else { return false }
        releasedAt = counts
        return true
    }
}

/// After a burst the process keeps what it used: the store connections' page caches (up to 64 MiB
/// for the writer) and glibc's free heap (freed, but not returned to the system). Once the pipeline
/// has been quiet for `interval` (see `IdleMemoryState`), the stores free their caches and the heap's
/// free pages go back to the system (`malloc_trim`), and the code pages the burst mapped in are
/// unmapped (`CodePages`), so an idle Stitch is small again.
package struct IdleMemoryService<C: Clock>: Service where C.Duration == Duration {
    let assembler: TraceAssembler<C>
    let queues: [HandoffQueue]
    let stores: [any TraceStore]
    let clock: C
    let interval: Duration
    let logger: Logger
    let releases: Counter

    package static var defaultInterval: Duration { .seconds(5) }

    package init(assembler: TraceAssembler<C>, queues: [HandoffQueue], stores: [any TraceStore], clock: C,
                interval: Duration = Self.defaultInterval, logger: Logger, metrics: any MetricsFactory) {
        self.assembler = assembler
        self.queues = queues
        self.stores = stores
        self.clock = clock
        self.interval = interval
        self.logger = logger
        releases = Counter(label: "stitch_idle_memory_releases_total", factory: metrics)
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            var state = IdleMemoryState()
            while true {
                do { try await clock.sleep(for: interval) } catch { return }
                let counters = await assembler.counters
                let buffered = await assembler.stats.bufferedSpans
                let queues = queues.map(\.activity)
                let received = counters.acceptedSpans + counters.duplicateSpans + counters.lateSpans
                guard state.observe(counts: [received] + queues.map(\.enqueued),
                                    drained: buffered == 0 && queues.allSatisfy(\.drained)) else { continue }
                for store in stores { await store.releaseMemory() }
                let trimmed = HeapArenas.trim()
                let unmapped = CodePages.release()
                releases.increment()
                logger.debug("idle: store caches freed, heap trimmed, code pages unmapped", metadata: [
                    "heap.returned": "\(trimmed)", "code.bytes": "\(unmapped)",
                ])
            }
        }
    }
}

/// glibc's heap arenas. A thread that finds the heap it used locked takes another one, up to eight
/// per core; each keeps the pages its live blocks sit on, and `malloc_trim` cannot give back a page
/// with any live block. After an end-to-end burst the default left ~20 MiB resident for ~4 MiB in
/// use across a dozen arenas; two arenas left ~11 MiB, with the same accept and end-to-end rates
/// on two cores (paired runs).
package enum HeapArenas {
    package static let limit: Int32 = 2

    /// Caps the number of arenas; call before the server's threads start. False when glibc refuses,
    /// and where there is no glibc.
    @discardableResult
    package static func limitCount() -> Bool {
        #if os(Linux)
        mallopt(M_ARENA_MAX, limit) == 1
        #else
        false
        #endif
    }

    /// Hands the heap's free pages back to the system (glibc's `malloc_trim`); false when nothing
    /// was returned, and where there is no glibc.
    static func trim() -> Bool {
        #if os(Linux)
        malloc_trim(0) != 0
        #else
        false
        #endif
    }
}
