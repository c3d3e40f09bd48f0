import Logging
import Metrics
import PostgresStore
import SQLiteStore
import TraceModel

/// The store a location names: `postgresql://…` (also `postgres://`) is the PostgreSQL store,
/// anything else a SQLite file.
package enum StoreOpening {
    package static func open(_ location: String, defaultExperimentID: String = "0", readOnly: Bool = false,
                             logger: Logger = Logger(label: "stitch.store"),
                             metrics: any MetricsFactory = MetricsSystem.factory) async throws -> any TraceStore {
        if PostgresURL.isPostgresURL(location) {
            return try await PostgresTraceStore(url: try PostgresURL(location), defaultExperimentID: defaultExperimentID,
                                                readOnly: readOnly, logger: logger, metrics: metrics)
        }
        return try SQLiteTraceStore(path: location, defaultExperimentID: defaultExperimentID, readOnly: readOnly,
                                    logger: logger, metrics: metrics)
    }

    /// The location as logs and errors show it (a PostgreSQL URL without its password).
    package static func describe(_ location: String) -> String {
        guard PostgresURL.isPostgresURL(location) else { return location }
        return (try? PostgresURL(location, environment: [:]).description) ?? PostgresURL.redact(location)
    }
}
