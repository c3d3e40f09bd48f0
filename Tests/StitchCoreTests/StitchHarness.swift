import Foundation
import Logging
import ServiceLifecycle
import StitchCore
import StitchTestSupport
import Synchronization

/// Runs whole Stitch instances in-process for tests.
enum StitchHarness {
    struct Running {
        var port: Int
        var db: String
        var group: ServiceGroup
    }

    /// Starts Stitch with short timeouts (flags and an optional YAML file), runs `body`, then shuts
    /// down gracefully (like SIGTERM). The store is in a fresh directory unless `db` is given.
    static func withStitch(flags: [String: String] = [:], file: String? = nil,
                           _ body: (Running) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("stitch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var all = ["listen": "127.0.0.1:0", "db": directory.appendingPathComponent("stitch.db").path,
                   "queue_dir": directory.appendingPathComponent("queues").path,
                   "idle_timeout": "200ms", "max_trace_age": "20s"]
        all.merge(flags) { $1 }
        let configuration = try StitchConfiguration.load(file: file.map { ("test.yaml", $0) }, environment: [:], flags: all)
        let portBox = Mutex<Int?>(nil)
        let group = try StitchApplication(configuration: configuration, logger: Logger(label: "test"))
            .makeServiceGroup(signals: []) { address in portBox.withLock { $0 = address.port } }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                let port = try await poll("listening") { portBox.withLock { $0 } }
                try await body(Running(port: port, db: configuration.queryStorePath, group: group))
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// Polls every 20 ms, up to `seconds`, until `probe` yields a value.
    static func poll<T>(_ what: String, seconds: Int = 10, _ probe: () async throws -> T?) async throws -> T {
        for _ in 0..<(seconds * 50) {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw StitchError("timed out waiting for \(what)")
    }

    /// A port that nothing listens on right now.
    static func freePort() throws -> Int {
        let client = try RawHTTPClient.listenAndClose()
        return client
    }
}
