import Logging
import ServiceLifecycle
@testable import StitchCore
import Synchronization
import Testing

/// Graceful shutdown is bounded: a service that does not finish is named, and `run` gives up.
@Suite("Shutdown deadline")
struct ShutdownDeadlineTests {
    /// Ignores graceful shutdown; ends only when cancelled.
    struct Stuck: Service {
        func run() async throws {
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
        }
    }

    /// Ends as soon as graceful shutdown is requested.
    struct Polite: Service {
        func run() async throws { try? await gracefulShutdown() }
    }

    static func group(_ services: [(String, any Service)], progress: ShutdownDeadline.Progress) -> ServiceGroup {
        let entries = services.map { name, service in
            (ShutdownDeadline.Entry(name: name, pending: { name == "stuck" ? "7 traces not yet written" : nil }), service)
        }
        return ServiceGroup(configuration: .init(
            services: ShutdownDeadline.services(entries, progress: progress).map { .init(service: $0) },
            logger: Logger(label: "test")))
    }

    @Test("a service that outlives the timeout is named with what it holds, and run throws")
    func timesOut() async throws {
        let progress = ShutdownDeadline.Progress()
        let group = Self.group([("stuck", Stuck()), ("polite", Polite())], progress: progress)
        let reported = StitchHarness.Box<String>()
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                await #expect(throws: ShutdownDeadline.TimedOut.self) {
                    try await ShutdownDeadline(timeout: .seconds(1), progress: progress)
                        .run(group, logger: Logger(label: "test")) { error in reported.set("\(error)") }
                }
            }
            _ = try await StitchHarness.poll("both services running") { progress.unfinished.count == 2 ? true : nil }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let message = try #require(reported.value)
        #expect(message.contains("stuck (7 traces not yet written)"), "\(message)")
        #expect(!message.contains("polite"), "\(message)")
        #expect(ContinuousClock.now - started < .seconds(120), "it returns instead of waiting for the stuck service")
    }

    @Test("services that finish in time: run returns, the timer never fires")
    func finishesInTime() async throws {
        let progress = ShutdownDeadline.Progress()
        let group = Self.group([("a", Polite()), ("b", Polite())], progress: progress)
        let reported = StitchHarness.Box<Bool>()
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await ShutdownDeadline(timeout: .seconds(2), progress: progress)
                    .run(group, logger: Logger(label: "test")) { _ in reported.set(true) }
            }
            _ = try await StitchHarness.poll("both services running") { progress.unfinished.count == 2 ? true : nil }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // run returned: the timer task was cancelled with it and never reports.
        try await Task.sleep(for: .milliseconds(100))
        #expect(reported.value == nil)
        #expect(progress.unfinished.isEmpty)
    }
}
