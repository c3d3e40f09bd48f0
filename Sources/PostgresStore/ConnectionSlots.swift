import Logging
import NIOCore
import PostgresNIO
import Synchronization
import TraceModel

/// At most `limit` connections to one server, opened on demand and dropped when they close.
///
/// Stitch keeps its own few connections rather than postgres-nio's `PostgresClient` pool: after
/// the server was killed under load, that pool sometimes kept a lease waiting for good although
/// the server was back (seen in `aServerKilledAndRestartedMidRunLosesNothing`). Here a caller that
/// finds no idle connection opens one itself, so each attempt either gets a working connection or
/// fails with the server's reason, and the writer's back-off decides when to try again.
final class ConnectionSlots: Sendable {
    private struct State {
        var idle: [PostgresConnection] = []
        var open = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }

    let limit: Int
    private let connect: @Sendable () async throws -> PostgresConnection
    private let state = Mutex(State())

    init(limit: Int, connect: @escaping @Sendable () async throws -> PostgresConnection) {
        self.limit = max(1, limit)
        self.connect = connect
    }

    /// Lends a connection for `body`; a connection that is closed afterwards (or that `body` failed
    /// on with a connection error) is not lent again. Queries only: a transaction is `withTransaction`.
    func withConnection<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        let connection = try await acquire()
        switch await Self.untilClosed(connection, { try await body(connection) }) {
        case .success(let result):
            release(connection, broken: connection.isClosed)
            return result
        case .failure(let error):
            release(connection, broken: connection.isClosed || PostgresErrors.isRetryable(error))
            throw error
        }
    }

    /// `body` inside `BEGIN` … `COMMIT`. On any failure the connection is closed rather than rolled
    /// back (the server aborts the transaction).
    ///
    /// postgres-nio 1.33 never answers a query written to a connection that has just closed (its
    /// promise is dropped with the failed write), so a transaction whose connection closes under it
    /// may wait for good; its own `withTransaction` even sends `ROLLBACK` on such a connection. A
    /// transaction still running 1 s after its connection closed is given up here with
    /// `ConnectionLost` (the query's task is left behind; it holds nothing but that connection).
    func withTransaction<Result: Sendable>(logger: Logger,
                                           _ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        let connection = try await acquire()
        let outcome = await Self.untilClosed(connection) {
            try await connection.query("BEGIN", logger: logger)
            let result = try await body(connection)
            try await connection.query("COMMIT", logger: logger)
            return result
        }
        switch outcome {
        case .success(let result):
            release(connection, broken: connection.isClosed)
            return result
        case .failure(let error):
            release(connection, broken: true)
            throw error
        }
    }

    /// The connection closed under a transaction that then never finished.
    struct ConnectionLost: Error, CustomStringConvertible {
        var description: String { "the connection closed during the transaction" }
    }

    /// Runs `work`; its outcome, or `ConnectionLost` once the connection has been closed for 1 s
    /// while `work` still runs.
    private static func untilClosed<Value: Sendable>(
        _ connection: PostgresConnection, _ work: @escaping @Sendable () async throws -> Value
    ) async -> Swift.Result<Value, any Error> {
        let outcome = FirstOutcome<Value>()
        return await withCheckedContinuation { continuation in
            outcome.wait(continuation)
            let worker = Task {
                do { outcome.finish(.success(try await work())) } catch { outcome.finish(.failure(error)) }
            }
            Task {
                var closedTicks = 0
                while !outcome.isFinished {
                    try? await Task.sleep(for: .milliseconds(200))
                    closedTicks = connection.isClosed ? closedTicks + 1 : 0
                    if closedTicks >= 5 {
                        worker.cancel()
                        outcome.finish(.failure(ConnectionLost()))
                    }
                }
            }
        }
    }

    private enum Next {
        case reuse(PostgresConnection)
        case open
        case wait
        case closed
    }

    private func acquire() async throws -> PostgresConnection {
        while true {
            let next: Next = state.withLock { state in
                if state.closed { return .closed }
                while let connection = state.idle.popLast() {
                    if !connection.isClosed { return .reuse(connection) }
                    state.open -= 1
                }
                if state.open < limit {
                    state.open += 1
                    return .open
                }
                return .wait
            }
            switch next {
            case .reuse(let connection):
                return connection
            case .closed:
                throw StoreError("the store is closed")
            case .open:
                do {
                    return try await connect()
                } catch {
                    let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                        state.open -= 1
                        return state.waiters.isEmpty ? nil : state.waiters.removeFirst()
                    }
                    waiter?.resume()
                    throw error
                }
            case .wait:
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state -> Bool in
                        // A slot may have freed between the check above and now.
                        if state.closed || !state.idle.isEmpty || state.open < limit { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    private func release(_ connection: PostgresConnection, broken: Bool) {
        let (waiter, close) = state.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
            if broken || state.closed {
                state.open -= 1
            } else {
                state.idle.append(connection)
            }
            return (state.waiters.isEmpty ? nil : state.waiters.removeFirst(), broken || state.closed)
        }
        if close { connection.close().whenComplete { _ in withExtendedLifetime(connection) {} } }
        waiter?.resume()
    }

    /// A store dropped without `close()` (a command that reads and exits) still closes its
    /// connections: postgres-nio requires a connection to be closed before it is freed.
    deinit {
        let idle = state.withLock { state in state.idle }
        for connection in idle { connection.close().whenComplete { _ in withExtendedLifetime(connection) {} } }
    }

    /// Closes the idle connections; those lent out are closed when they come back.
    func close() async {
        let (idle, waiters) = state.withLock { state -> ([PostgresConnection], [CheckedContinuation<Void, Never>]) in
            state.closed = true
            let idle = state.idle
            state.open -= idle.count
            state.idle = []
            let waiters = state.waiters
            state.waiters = []
            return (idle, waiters)
        }
        for waiter in waiters { waiter.resume() }
        // Not awaited: closing a connection the server has already dropped may never complete.
        for connection in idle { connection.close().whenComplete { _ in withExtendedLifetime(connection) {} } }
    }
}

/// The first of several outcomes, handed to one waiting continuation.
private final class FirstOutcome<Value: Sendable>: Sendable {
    private let state = Mutex<(waiting: CheckedContinuation<Swift.Result<Value, any Error>, Never>?, finished: Bool)>((nil, false))

    var isFinished: Bool { state.withLock { $0.finished } }

    func wait(_ continuation: CheckedContinuation<Swift.Result<Value, any Error>, Never>) {
        state.withLock { $0.waiting = continuation }
    }

    func finish(_ result: Swift.Result<Value, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<Swift.Result<Value, any Error>, Never>? in
            guard !state.finished else { return nil }
            state.finished = true
            defer { state.waiting = nil }
            return state.waiting
        }
        continuation?.resume(returning: result)
    }
}
