import PostgresNIO
import TraceModel

/// What a PostgreSQL failure means for a write, and how to say it without leaking values.
enum PostgresErrors {
    /// The failure is the connection's or a conflict with another writer (the same transaction may
    /// succeed later), not the data's.
    static func isRetryable(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else {
            // Connecting failed (refused, reset, unreachable): the pool's own errors.
            return !(error is StoreError) && !(error is CancellationError)
        }
        guard error.code == .server, let state = error.serverInfo?[.sqlState] else {
            // Closed, reset or unclean connections, timeouts, TLS and the pool's shutdown.
            return error.code != .poolClosed && error.code != .tooManyParameters
        }
        // 40: transaction rollback (deadlock, serialization failure); 08: connection exception;
        // 57P01–57P03: administrator or crash shutdown, cannot connect now; 53: insufficient
        // resources (too many connections, disk full).
        return state.hasPrefix("40") || state.hasPrefix("08") || state.hasPrefix("53")
            || ["57P01", "57P02", "57P03"].contains(state)
    }

    /// Retryable because the server cannot be reached or dropped the connection (not a conflict
    /// between writers).
    static func isConnectionLoss(_ error: any Error) -> Bool {
        guard isRetryable(error) else { return false }
        guard let error = error as? PSQLError, error.code == .server, let state = error.serverInfo?[.sqlState] else { return true }
        return !state.hasPrefix("40")
    }

    /// The server's SQLSTATE and message, or the client's error code: never the query's values.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo {
            var text = "\(info[.severity] ?? "ERROR") \(info[.sqlState] ?? "?"): \(info[.message] ?? "")"
            if let detail = info[.detail] { text += " (\(detail))" }
            return text
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }
}
