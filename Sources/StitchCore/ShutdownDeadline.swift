import Logging
import ServiceLifecycle
import Synchronization

/// Graceful shutdown with a bound: once shutdown is requested, the services have `timeout` to finish;
/// past it the ones still running are named (with what they still hold) and `run` gives up.
///
/// A `ServiceGroup` shuts its services down one after another in reverse order and waits for each
/// for as long as it takes; a store writer draining a large queue onto a stalled disk, or a
/// destination that never answers, would keep the process alive forever. Stitch instead reports
/// and exits non-zero (the caller's `onTimeout`; `stitch serve` exits with status 3).
struct ShutdownDeadline: Sendable {
    /// What a still-running service is, and what it has not finished (nil when nothing to say).
    struct Entry: Sendable {
        var name: String
        var pending: @Sendable () -> String?
    }

    /// The services that have started and not yet returned, and whether shutdown was requested.
    final class Progress: Sendable {
        private let running = Mutex<[Int: Entry]>([:])
        /// Yields once when shutdown is requested; one reader (the deadline's timer).
        private let requests = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))

        func started(_ id: Int, _ entry: Entry) { running.withLock { $0[id] = entry } }
        func finished(_ id: Int) { running.withLock { _ = $0.removeValue(forKey: id) } }

        /// Each still-running service, in start order, with what it holds.
        var unfinished: [String] {
            let entries = running.withLock { $0.sorted { $0.key < $1.key }.map(\.value) }
            return entries.map { entry in entry.pending().map { "\(entry.name) (\($0))" } ?? entry.name }
        }

        func requestShutdown() { requests.continuation.yield() }

        /// Returns once shutdown was requested, or when the task is cancelled.
        func shutdownRequested() async {
            for await _ in requests.stream { return }
        }
    }

    /// Runs a service and keeps `progress` told whether it is still running.
    struct Tracked: Service {
        let id: Int
        let entry: Entry
        let service: any Service
        let progress: Progress

        func run() async throws {
            progress.started(id, entry)
            defer { progress.finished(id) }
            try await service.run()
        }
    }

    /// The last service of the group (so the first told to shut down): marks the moment shutdown began.
    struct Watcher: Service {
        let progress: Progress

        func run() async throws {
            try? await gracefulShutdown()
            progress.requestShutdown()
        }
    }

    /// The group's services wrapped for tracking, plus the watcher at the end.
    static func services(_ entries: [(Entry, any Service)], progress: Progress) -> [any Service] {
        entries.enumerated().map { index, pair in Tracked(id: index, entry: pair.0, service: pair.1, progress: progress) }
            + [Watcher(progress: progress)]
    }

    /// Raised when shutdown took longer than allowed.
    struct TimedOut: Error, CustomStringConvertible {
        var timeout: Duration
        var unfinished: [String]
        var description: String {
            "graceful shutdown did not finish within \(ConfigValues.format(timeout)); still running: "
                + (unfinished.isEmpty ? "(none)" : unfinished.joined(separator: "; "))
        }
    }

    let timeout: Duration
    let progress: Progress

    /// Runs `group` until it returns. If shutdown is requested and the group has not returned
    /// `timeout` later, calls `onTimeout` with the error (which may end the process), then cancels
    /// the group and throws the error.
    func run(_ group: ServiceGroup, logger: Logger, onTimeout: @escaping @Sendable (TimedOut) -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask { [progress, timeout] in
                await progress.shutdownRequested()
                try Task.checkCancellation()
                try await Task.sleep(for: timeout)
                let error = TimedOut(timeout: timeout, unfinished: progress.unfinished)
                logger.error("\(error)")
                onTimeout(error)
                throw error
            }
            defer { tasks.cancelAll() }
            try await tasks.next()
        }
    }
}
