import Foundation

/// A real PostgreSQL server for tests: `initdb` in a temporary directory, `postgres` on a free
/// loopback port, stopped by `stop()` or, should the test process die first, by a watchdog that
/// follows the test process. As root, every PostgreSQL command runs as the `postgres` user (the
/// server refuses root).
///
/// Logins over TCP need the password (`scram-sha-256`), so tests exercise password handling;
/// `url(database:)` carries it. The binaries are Debian's (`/usr/lib/postgresql/<version>/bin`,
/// installed by scripts/bootstrap.sh), or `STITCH_PG_BIN`.
package final class PostgresTestServer: @unchecked Sendable {
    package let port: Int
    package let directory: String
    package let password = "stitch-test-password"
    package let user = "postgres"
    private let bin: String
    private let lock = NSLock()

    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    /// One server per test process, started on first use; tests each make their own database.
    package static func shared() throws -> PostgresTestServer {
        try sharedLock.withLock {
            if let server = sharedServer { return server }
            let server = try PostgresTestServer()
            sharedServer = server
            return server
        }
    }
    nonisolated(unsafe) private static var sharedServer: PostgresTestServer?
    private static let sharedLock = NSLock()

    package init() throws {
        bin = try Self.binaries()
        port = try RawHTTPClient.listenAndClose()
        directory = NSTemporaryDirectory() + "stitch-pg-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let passwordFile = directory + "/pwfile"
        try password.write(toFile: passwordFile, atomically: true, encoding: .utf8)
        if getuid() == 0 { try Self.run("/bin/chown", ["-R", "postgres:postgres", directory]) }
        try asPostgres("\(bin)/initdb", ["-D", directory + "/data", "-U", user, "--auth-local=trust",
                                         "--auth-host=scram-sha-256", "--pwfile=\(passwordFile)", "-E", "UTF8",
                                         "--no-locale", "--no-sync"])
        try start()
    }

    deinit { stop() }

    /// `postgresql://postgres:<password>@127.0.0.1:<port>/<database>?sslmode=disable`.
    package func url(database: String, withPassword: Bool = true) -> String {
        "postgresql://\(user)\(withPassword ? ":" + password : "")@127.0.0.1:\(port)/\(database)?sslmode=disable"
    }

    /// A new empty database with a unique name; returns its name.
    package func makeDatabase(prefix: String = "t") throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased())"
        try psql("CREATE DATABASE \(name)")
        return name
    }

    /// Runs SQL through `psql` over the Unix socket; returns its unaligned, tuples-only output.
    @discardableResult
    package func psql(_ sql: String, database: String = "postgres") throws -> String {
        try asPostgres("\(bin)/psql", ["-h", directory, "-p", "\(port)", "-U", user, "-d", database,
                                       "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql])
    }

    /// Starts the server (again, after `kill()` or `stop()`) and waits until it takes connections.
    package func start() throws {
        try lock.withLock {
            // The watchdog stops the server when the test process is gone (its /proc entry: as the
            // postgres user, `kill -0` on root's process is refused whether or not it runs).
            let script = """
                "$0" -D "$1/data" -p "$2" -k "$1" -c listen_addresses=127.0.0.1 -c fsync=off \
                    -c max_connections=200 -c shared_buffers=64MB >>"$1/server.log" 2>&1 &
                server=$!
                while [ -d "/proc/$3" ] && kill -0 "$server" 2>/dev/null; do sleep 1; done
                kill -INT "$server" 2>/dev/null
                wait "$server"
                """
            let process = Process()
            process.executableURL = URL(fileURLWithPath: getuid() == 0 ? "/usr/sbin/runuser" : "/bin/sh")
            process.arguments = (getuid() == 0 ? ["-u", "postgres", "--", "/bin/sh"] : [])
                + ["-c", script, "\(bin)/postgres", directory, "\(port)", "\(getpid())"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (try? Self.run("\(bin)/pg_isready", ["-h", "127.0.0.1", "-p", "\(port)", "-q"])) != nil { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw Failure(description: "PostgreSQL did not start on port \(port) within 30 s; its log: \(log())")
    }

    /// Kills the server and its backends with SIGKILL (no shutdown, no checkpoint): the next
    /// `start()` recovers from the WAL, as after a crash.
    package func kill() throws {
        guard let pid = postmasterPID() else { return }
        _ = try? Self.run("/usr/bin/pkill", ["-KILL", "-P", "\(pid)"])
        Foundation.kill(pid, SIGKILL)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, Foundation.kill(pid, 0) == 0 { Thread.sleep(forTimeInterval: 0.05) }
        // Backends that outlived the postmaster still hold its shared memory; wait for them.
        while Date() < deadline, (try? Self.run("/usr/bin/pgrep", ["-f", "postgres.*\(directory)"])) != nil {
            _ = try? Self.run("/usr/bin/pkill", ["-KILL", "-f", "postgres.*\(directory)"])
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Stops the server (fast shutdown) and waits for it to exit.
    package func stop() {
        guard let pid = postmasterPID() else { return }
        Foundation.kill(pid, SIGINT)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, Foundation.kill(pid, 0) == 0 { Thread.sleep(forTimeInterval: 0.05) }
    }

    /// Stops the server and removes its directory.
    package func remove() {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    package func log() -> String {
        (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)).map { String($0.suffix(2000)) } ?? "(no log)"
    }

    private func postmasterPID() -> pid_t? {
        guard let text = try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first, let pid = pid_t(first), Foundation.kill(pid, 0) == 0 else { return nil }
        return pid
    }

    @discardableResult
    private func asPostgres(_ tool: String, _ arguments: [String]) throws -> String {
        if getuid() == 0 { return try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", tool] + arguments) }
        return try Self.run(tool, arguments)
    }

    private static func binaries() throws -> String {
        if let bin = ProcessInfo.processInfo.environment["STITCH_PG_BIN"] { return bin }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap(Int.init).sorted()
        guard let version = versions.last, FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/postgres") else {
            throw Failure(description: "no PostgreSQL server under \(root) (install Debian's postgresql: scripts/bootstrap.sh does)")
        }
        return "\(root)/\(version)/bin"
    }

    @discardableResult
    private static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: "/")
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(URL(fileURLWithPath: tool).lastPathComponent) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
        }
        return text
    }
}
