import Exporters
import Foundation
import PostgresStore
import Yams

/// One place finished traces go: the embedded store, an OTLP endpoint (HTTP or gRPC) or an MLflow tracking server.
///
/// ```yaml
/// destinations:
///   - name: jaeger
///     otlp: { endpoint: http://127.0.0.1:4318/v1/traces, compression: gzip, headers: { authorization: "Bearer …" }, timeout: 10s }
///   - name: collector
///     otlp: { protocol: grpc, endpoint: http://127.0.0.1:4317 }
///     traces: all            # all (default) | complete | incomplete
///     queue: { max_bytes: 1GiB, fsync: batch }
///     retry: { initial_interval: 1s, max_interval: 30s }
///   - name: mlflow
///     mlflow: { tracking_uri: http://127.0.0.1:5000, experiment_id: "1" }
///   - name: mlflow-db
///     mlflow_database: { url: "postgresql://mlflow@db.internal:5432/mlflow", experiment_id: "1" }
///   - name: local
///     store: { path: ./stitch-data/stitch.db }
///   - name: shared
///     store: { url: "postgresql://stitch@db.internal:5432/traces" }
/// ```
package struct DestinationConfiguration: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        /// A SQLite path, or a `postgresql://` URL.
        case store(path: String)
        /// `otlp:` with `protocol: http/protobuf` (the default).
        case otlp(OTLPHTTPExporterConfiguration)
        /// `otlp:` with `protocol: grpc`.
        case otlpGRPC(OTLPGRPCExporterConfiguration)
        case mlflow(MLflowExporterConfiguration)
        /// Straight into a database MLflow created (`mlflow_database:`).
        case mlflowDatabase(MLflowDatabaseConfiguration)
    }

    /// Which finished traces a destination wants. Late fragments go to every destination (each merges
    /// them into what it has), so that a trace stays whole everywhere.
    package enum Selection: String, Sendable, Equatable, CaseIterable {
        case all
        /// Only traces released closed (a root and every parent).
        case complete
        /// Only traces released incomplete (no root or missing parents): for debugging pipelines.
        case incomplete

        package func wants(_ isComplete: Bool, isLate: Bool) -> Bool {
            if isLate { return true }
            switch self {
            case .all: return true
            case .complete: return isComplete
            case .incomplete: return !isComplete
            }
        }
    }

    package var name: String
    package var kind: Kind
    package var traces: Selection
    /// Byte limit and fsync policy of this destination's on-disk queue (not used by `store`).
    package var queueMaxBytes: Int
    package var queueFsync: FsyncPolicy
    /// Back-off between retries of transient failures (`retry: { initial_interval, max_interval }`).
    package var retry: RetryPolicy

    package init(name: String, kind: Kind, traces: Selection = .all, queueMaxBytes: Int = 1 << 30, queueFsync: FsyncPolicy = .batch,
                retry: RetryPolicy = RetryPolicy()) {
        self.name = name
        self.kind = kind
        self.traces = traces
        self.queueMaxBytes = queueMaxBytes
        self.queueFsync = queueFsync
        self.retry = retry
    }

    /// An OTLP/HTTP destination from `--forward URL`.
    package static func forward(_ url: String, index: Int) -> DestinationConfiguration {
        DestinationConfiguration(name: "forward-\(index)", kind: .otlp(OTLPHTTPExporterConfiguration(endpoint: url)))
    }
}

/// Parses the `destinations:` list of the configuration file, collecting every problem with its key path.
enum DestinationParser {
    /// What each ranged destination value accepts.
    enum Limits {
        static let queueBytes = (1 << 20) ... (1 << 50)
        static let retryInterval: ClosedRange<Duration> = .milliseconds(1) ... .seconds(86400)
        static let timeout: ClosedRange<Duration> = .milliseconds(1) ... .seconds(3600)
        static let requestBytes = (1 << 10) ... OTLPHTTPExporterConfiguration.requestBytesLimit
    }

    static func parse(_ node: Node, source: String, problems: inout [ConfigurationProblem]) -> [DestinationConfiguration] {
        guard case .sequence(let items) = node else {
            problems.append(.init(keyPath: "destinations", source: source, reason: "must be a list of destinations"))
            return []
        }
        var result: [DestinationConfiguration] = []
        for (index, item) in items.enumerated() {
            var context = Context(path: "destinations[\(index)]", source: source)
            if let destination = parseOne(item, context: &context) { result.append(destination) }
            problems += context.problems
        }
        return result
    }

    struct Context {
        var path: String
        var source: String
        var problems: [ConfigurationProblem] = []

        mutating func problem(_ key: String?, _ reason: String) {
            problems.append(.init(keyPath: key.map { "\(path).\($0)" } ?? path, source: source, reason: reason))
        }

        /// A mapping's entries by key; reports non-mappings and unknown keys.
        mutating func mapping(_ node: Node, key: String?, allowed: Set<String>) -> [String: Node]? {
            guard case .mapping(let mapping) = node else {
                problem(key, "must be a mapping")
                return nil
            }
            var entries: [String: Node] = [:]
            for (keyNode, value) in mapping {
                guard let name = keyNode.string else { continue }
                let full = key.map { "\($0).\(name)" } ?? name
                if !allowed.contains(name) {
                    problem(full, "unknown key; known: \(allowed.sorted().joined(separator: ", "))")
                    continue
                }
                entries[name] = value
            }
            return entries
        }

        mutating func scalar(_ entries: [String: Node], _ name: String, in key: String?) -> String? {
            guard let node = entries[name] else { return nil }
            guard case .scalar(let scalar) = node else {
                problem(key.map { "\($0).\(name)" } ?? name, "must be a single value")
                return nil
            }
            return scalar.string
        }

        mutating func parsed<T>(_ entries: [String: Node], _ name: String, in key: String?, _ parse: (String) -> T?, expected: String) -> T? {
            guard let text = scalar(entries, name, in: key) else { return nil }
            guard let value = parse(text) else {
                problem(key.map { "\($0).\(name)" } ?? name, "'\(text)' is not \(expected)")
                return nil
            }
            return value
        }

        /// A value parsed and range-checked by `parse`; its problem is reported at the value's key path.
        mutating func ranged<T>(_ entries: [String: Node], _ name: String, in key: String?,
                                _ parse: (String) -> Result<T, ConfigValues.Problem>) -> T? {
            guard let text = scalar(entries, name, in: key) else { return nil }
            switch parse(text) {
            case .success(let value):
                return value
            case .failure(let failure):
                problem(key.map { "\($0).\(name)" } ?? name, failure.reason)
                return nil
            }
        }

        mutating func headers(_ entries: [String: Node], in key: String) -> [String: String] {
            guard let node = entries["headers"] else { return [:] }
            guard case .mapping(let mapping) = node else {
                problem("\(key).headers", "must be a mapping of header names to values")
                return [:]
            }
            var headers: [String: String] = [:]
            for (name, value) in mapping {
                guard let name = name.string, case .scalar(let scalar) = value else {
                    problem("\(key).headers", "every header must be a name and a single value")
                    continue
                }
                headers[name] = scalar.string
            }
            return headers
        }
    }

    static func bool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": true
        case "false", "no", "off": false
        default: nil
        }
    }

    private static func parseOne(_ node: Node, context: inout Context) -> DestinationConfiguration? {
        guard let entries = context.mapping(node, key: nil, allowed: ["name", "traces", "queue", "retry", "otlp", "mlflow", "mlflow_database", "store"]) else {
            return nil
        }
        let name = context.scalar(entries, "name", in: nil) ?? ""
        if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
            context.problem("name", "is required: letters, digits, '-' and '_' (it names the queue directory)")
        }
        let traces = context.parsed(entries, "traces", in: nil, { DestinationConfiguration.Selection(rawValue: $0.lowercased()) },
                                    expected: "all, complete or incomplete") ?? .all
        var queueMaxBytes = 1 << 30
        var queueFsync = FsyncPolicy.batch
        if let queueNode = entries["queue"], let queue = context.mapping(queueNode, key: "queue", allowed: ["max_bytes", "fsync"]) {
            queueMaxBytes = context.ranged(queue, "max_bytes", in: "queue") { ConfigValues.size($0, within: Limits.queueBytes) } ?? queueMaxBytes
            queueFsync = context.parsed(queue, "fsync", in: "queue", { FsyncPolicy(rawValue: $0.lowercased()) }, expected: "batch or never") ?? queueFsync
        }
        var retry = RetryPolicy()
        if let retryNode = entries["retry"], let settings = context.mapping(retryNode, key: "retry", allowed: ["initial_interval", "max_interval"]) {
            retry.initialInterval = context.ranged(settings, "initial_interval", in: "retry") {
                ConfigValues.duration($0, within: Limits.retryInterval)
            } ?? retry.initialInterval
            retry.maxInterval = context.ranged(settings, "max_interval", in: "retry") {
                ConfigValues.duration($0, within: Limits.retryInterval)
            } ?? retry.maxInterval
            for problem in retry.problems() { context.problem("retry", problem) }
        }

        let kinds = ["otlp", "mlflow", "mlflow_database", "store"].filter { entries[$0] != nil }
        guard kinds.count == 1 else {
            context.problem(nil, kinds.isEmpty ? "needs one of otlp, mlflow, mlflow_database or store"
                                                : "has \(kinds.joined(separator: " and ")); choose one")
            return nil
        }
        let kind: DestinationConfiguration.Kind
        switch kinds[0] {
        case "otlp":
            guard let otlp = context.mapping(entries["otlp"]!, key: "otlp",
                                             allowed: ["protocol", "endpoint", "compression", "headers", "timeout", "max_request_bytes"]) else { return nil }
            guard let parsed = parseOTLP(otlp, context: &context) else { return nil }
            kind = parsed
        case "mlflow":
            guard let mlflow = context.mapping(entries["mlflow"]!, key: "mlflow",
                                               allowed: ["tracking_uri", "experiment_id", "experiment_from_trace", "headers", "timeout",
                                                         "compression", "set_trace_tags"]) else { return nil }
            let uri = context.scalar(mlflow, "tracking_uri", in: "mlflow") ?? ""
            if uri.isEmpty { context.problem("mlflow.tracking_uri", "is required (e.g. http://127.0.0.1:5000)") }
            let experiment = context.scalar(mlflow, "experiment_id", in: "mlflow")
            var settings = MLflowExporterConfiguration(trackingURI: uri, experimentID: experiment, headers: context.headers(mlflow, in: "mlflow"))
            // A configured experiment is used as is, unless told to prefer the trace's own.
            settings.experimentFromTrace = context.parsed(mlflow, "experiment_from_trace", in: "mlflow", bool, expected: "true or false") ?? (experiment == nil)
            settings.timeout = context.ranged(mlflow, "timeout", in: "mlflow") { ConfigValues.duration($0, within: Limits.timeout) } ?? settings.timeout
            settings.compression = context.parsed(mlflow, "compression", in: "mlflow", { HTTPCompression(rawValue: $0.lowercased()) },
                                                  expected: "gzip or none") ?? settings.compression
            settings.setTraceTags = context.parsed(mlflow, "set_trace_tags", in: "mlflow", bool, expected: "true or false") ?? settings.setTraceTags
            if !uri.isEmpty { for problem in settings.problems() { context.problem("mlflow", problem) } }
            kind = .mlflow(settings)
        case "mlflow_database":
            guard let database = context.mapping(entries["mlflow_database"]!, key: "mlflow_database",
                                                 allowed: ["url", "experiment_id", "experiment_from_trace"]) else { return nil }
            let url = context.scalar(database, "url", in: "mlflow_database") ?? ""
            guard !url.isEmpty else {
                context.problem("mlflow_database.url", "is required: the URI mlflow server --backend-store-uri is given (sqlite:////path/mlflow.db or postgresql://…)")
                return nil
            }
            let experiment = context.scalar(database, "experiment_id", in: "mlflow_database")
            var settings = MLflowDatabaseConfiguration(uri: url, experimentID: experiment)
            settings.experimentFromTrace = context.parsed(database, "experiment_from_trace", in: "mlflow_database", bool,
                                                          expected: "true or false") ?? (experiment == nil)
            for problem in settings.problems() { context.problem("mlflow_database", problem) }
            kind = .mlflowDatabase(settings)
        default:
            // `path` for SQLite, `url` for PostgreSQL (`postgresql://…`); one of them.
            guard let store = context.mapping(entries["store"]!, key: "store", allowed: ["path", "url"]) else { return nil }
            let path = context.scalar(store, "path", in: "store")
            let url = context.scalar(store, "url", in: "store")
            switch (path, url) {
            case (let path?, nil) where !path.isEmpty:
                kind = .store(path: path)
            case (nil, let url?) where PostgresURL.isPostgresURL(url):
                kind = .store(path: url)
            case (nil, let url?):
                context.problem("store.url", "must be a postgresql:// URL, got '\(PostgresURL.redact(url))' (a SQLite file is store.path)")
                return nil
            case (_?, _?):
                context.problem("store", "has path and url; choose one")
                return nil
            default:
                context.problem("store.path", "is required (or store.url for PostgreSQL)")
                return nil
            }
        }
        return DestinationConfiguration(name: name, kind: kind, traces: traces, queueMaxBytes: queueMaxBytes, queueFsync: queueFsync,
                                        retry: retry)
    }

    /// The exporter protocols of `otlp.protocol`. Stated, never guessed from the endpoint's port.
    enum OTLPProtocol: String, CaseIterable {
        case httpProtobuf = "http/protobuf"
        case grpc
    }

    /// `otlp:`: the settings both protocols share, read once, then the protocol's own checks.
    private static func parseOTLP(_ otlp: [String: Node], context: inout Context) -> DestinationConfiguration.Kind? {
        let transport = context.parsed(otlp, "protocol", in: "otlp", { OTLPProtocol(rawValue: $0.lowercased()) },
                                       expected: "http/protobuf or grpc") ?? .httpProtobuf
        let endpoint = context.scalar(otlp, "endpoint", in: "otlp")
        var settings = OTLPHTTPExporterConfiguration(endpoint: endpoint ?? "", headers: context.headers(otlp, in: "otlp"))
        settings.compression = context.parsed(otlp, "compression", in: "otlp", { HTTPCompression(rawValue: $0.lowercased()) },
                                              expected: "gzip or none") ?? settings.compression
        settings.timeout = context.ranged(otlp, "timeout", in: "otlp") { ConfigValues.duration($0, within: Limits.timeout) } ?? settings.timeout
        settings.maxRequestBytes = context.ranged(otlp, "max_request_bytes", in: "otlp") {
            ConfigValues.size($0, within: Limits.requestBytes)
        } ?? settings.maxRequestBytes
        guard endpoint != nil else {
            let example = transport == .grpc ? "http://127.0.0.1:4317" : "http://127.0.0.1:4318/v1/traces"
            context.problem("otlp.endpoint", "is required (e.g. \(example))")
            return nil
        }
        switch transport {
        case .httpProtobuf:
            for problem in settings.problems() { context.problem("otlp", problem) }
            return .otlp(settings)
        case .grpc:
            let grpc = OTLPGRPCExporterConfiguration(endpoint: settings.endpoint, headers: settings.headers, compression: settings.compression,
                                                     timeout: settings.timeout, maxRequestBytes: settings.maxRequestBytes)
            for problem in grpc.problems() { context.problem("otlp", problem) }
            return .otlpGRPC(grpc)
        }
    }
}
