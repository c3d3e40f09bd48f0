import NIOPosix
import Synchronization

/// One thread of its own for the file I/O of a persistent queue or a dead-letter store: reads, writes
/// and fsyncs never run on Swift's cooperative pool (two threads on a two-core machine, shared with
/// every request being answered) or on an event loop, where a slow disk would stall unrelated work.
///
/// Work items run one at a time, in the order submitted. A submitted item runs even if the submitting
/// task is cancelled meanwhile: a write abandoned half-way would leave the caller unsure of what is on
/// disk. After `shutdown()` new work fails with a `QueueError`. The owner calls `shutdown()` when it is
/// done (the thread is stopped at deinit too, as a backstop).
final class FileIOThread: Sendable {
    let name: String
    private let pool: NIOThreadPool
    private let stopped = Atomic<Bool>(false)

    /// Starts the thread. `name` appears in errors (the queue or store it serves).
    init(name: String) {
        self.name = name
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    deinit {
        // Not blocking: the last reference may be dropped on the pool's own thread.
        if !stopped.load(ordering: .acquiring) { pool.shutdownGracefully { _ in } }
    }

    /// Runs `body` on the thread and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws(QueueError) -> T) async throws(QueueError) -> T {
        let name = self.name
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, QueueError>, Never>) in
            // `submit`, not `runIfActive`: the latter skips items whose task was cancelled.
            pool.submit { state in
                guard case .active = state else {
                    continuation.resume(returning: .failure(QueueError("\(name) is shut down")))
                    return
                }
                continuation.resume(returning: Result { () throws(QueueError) -> T in try body() })
            }
        }
        return try result.get()
    }

    /// Lets the work submitted so far finish, then stops the thread; later calls do nothing.
    func shutdown() async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // One thread, in order: once this empty item has run, everything submitted before it has.
        _ = try? await run {}
        try? await pool.shutdownGracefully()
    }
}
