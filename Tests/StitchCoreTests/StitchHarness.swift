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
        // Both receivers on free ports (never 4317/4318: tests run in parallel).
        var all = ["listen": "127.0.0.1:0", "grpc_listen": "127.0.0.1:0", "queue_dir": directory.appendingPathComponent("queues").path,
                   "idle_timeout": "200ms", "max_trace_age": "20s"]
        // A file that lists destinations names its stores itself (a `db` beside them is refused).
        if !(file?.contains("destinations:") ?? false) { all["db"] = directory.appendingPathComponent("stitch.db").path }
        all.merge(flags) { $1 }
        let configuration = try StitchConfiguration.load(file: file.map { ("test.yaml", $0) }, environment: [:], flags: all)
        let portBox = Box<Int>()
        let groupBox = Box<ServiceGroup>()
        let application = StitchApplication(configuration: configuration, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                try await application.run(signals: [], onListening: { address in if let port = address.port { portBox.set(port) } },
                                          onGroup: { group in groupBox.set(group) })
            }
            do {
                let port = try await poll("listening") { portBox.value }
                let group = try await poll("the service group") { groupBox.value }
                try await body(Running(port: port, db: configuration.queryStorePath, group: group))
            } catch {
                let group = groupBox.value
                await group?.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
            let group = groupBox.value
            await group?.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// A value set once from another task.
    final class Box<T: Sendable>: Sendable {
        private let state = Mutex<T?>(nil)
        func set(_ value: T) { state.withLock { $0 = value } }
        var value: T? { state.withLock { $0 } }
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

    /// A port p such that p and p + 1 are both free right now (a cluster member's HTTP and gRPC
    /// ports: p + 1 unchecked is often an outgoing connection's port while the tests run).
    static func freePortPair() throws -> Int {
        try RawHTTPClient.freeAdjacentPorts()
    }
}
