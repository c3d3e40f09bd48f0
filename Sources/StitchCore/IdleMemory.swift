import CMalloc
import Logging
import Metrics
import ServiceLifecycle
import TraceStore

/// Decides when to hand memory back: once every destination's queue has been drained and nothing
/// new arrived for a whole interval, and only once per quiet spell.
struct IdleMemoryState {
    private var last: [Int]?
    private var releasedAt: [Int]?

    /// One look per interval at each queue's `activity`; true when memory should be released now.
    mutating func observe(_ activity: [(enqueued: Int, drained: Bool)]) -> Bool {
        let counts = activity.map(\.enqueued)
        defer { last = counts }
        guard activity.allSatisfy(\.drained), counts == last, counts != releasedAt else { return false }
        releasedAt = counts
        return true
    }
}

/// After a burst the process keeps what it used: the store connections' page caches (up to 64 MiB
/// for the writer) and glibc's free heap (freed, but not returned to the system). Once the pipeline
/// has been quiet for `interval` (see `IdleMemoryState`), the stores free their caches and the heap's
/// free pages go back to the system (`malloc_trim`), so an idle Stitch is small again.
public struct IdleMemoryService<C: Clock>: Service where C.Duration == Duration {
    let queues: [WriteQueue]
    let stores: [SQLiteTraceStore]
    let clock: C
    let interval: Duration
    let logger: Logger
    let releases: Counter

    public static var defaultInterval: Duration { .seconds(5) }

    public init(queues: [WriteQueue], stores: [SQLiteTraceStore], clock: C, interval: Duration = Self.defaultInterval,
                logger: Logger, metrics: any MetricsFactory) {
        self.queues = queues
        self.stores = stores
        self.clock = clock
        self.interval = interval
        self.logger = logger
        releases = Counter(label: "stitch_idle_memory_releases_total", factory: metrics)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var state = IdleMemoryState()
            while true {
                do { try await clock.sleep(for: interval) } catch { return }
                guard state.observe(queues.map(\.activity)) else { continue }
                for store in stores { await store.releaseMemory() }
                let trimmed = malloc_trim(0) != 0
                releases.increment()
                logger.debug("idle: store caches freed, heap trimmed", metadata: ["heap.returned": "\(trimmed)"])
            }
        }
    }
}
