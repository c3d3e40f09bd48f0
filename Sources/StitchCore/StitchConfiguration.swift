import Exporters
import Foundation
import PostgresStore
import Logging
import TraceAssembler
import TraceEdge
import Yams

/// Everything `stitch serve` can be told, as one validated value.
///
/// Sources, lowest to highest precedence: built-in defaults, the YAML file (`Config/stitch.yaml` or
/// `--config FILE`), environment variables `STITCH_<KEY>`, command-line flags `--<key-in-kebab-case>`.
/// Every key below exists in all three forms (`idle_timeout`, `STITCH_IDLE_TIMEOUT`, `--idle-timeout`).
package struct StitchConfiguration: Sendable, Equatable {
    /// `listen`: address of the OTLP/HTTP receiver, query API, health and metrics.
    package var listen = ListenAddress(host: "127.0.0.1", port: 4318)
    /// `grpc_listen`: address of the OTLP/gRPC receiver; nil (an empty value) turns it off.
    package var grpcListen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 4317)
    /// `db`: path of the embedded SQLite store.
    package var db = "./stitch-data/stitch.db"
    /// `default_experiment_id`: experiment of traces whose requests carry no `x-mlflow-experiment-id`.
    package var defaultExperimentID = "0"
    /// The completion rules (`idle_timeout`, `max_trace_age`, `max_spans_per_trace`, `max_traces`,
    /// `max_buffered_bytes`, `late_window`).
    package var assembler = AssemblerConfiguration()
    /// `max_body_size`: request body (gRPC: message) limit, compressed and decompressed (413, gRPC
    /// `RESOURCE_EXHAUSTED`, over it).
    package var maxBodySize = 64 * 1024 * 1024
    /// `max_connections`: open connections beyond this are closed at once.
    package var maxConnections = 4096
    /// `store_queue_max_bytes`: finished traces waiting for the store; while every destination is over it
    /// the receiver answers 429 (503 when a disk queue is full; see `PipelineIngest`).
    package var storeQueueMaxBytes = 256 * 1024 * 1024
    /// `store_batch_max_traces`: traces written per store transaction at most.
    package var storeBatchMaxTraces = 1000
    /// `retry_after`: the delay announced in `Retry-After` when refusing under pressure.
    package var retryAfter: Duration = .seconds(1)
    /// `shutdown_timeout`: how long graceful shutdown (receiver stopped, assembler flushed, writers
    /// drained) may take; past it Stitch says what it could not finish and exits with status 3.
    package var shutdownTimeout: Duration = .seconds(30)
    /// `log_level`: trace, debug, info, notice, warning, error, critical.
    package var logLevel = Logger.Level.info
    /// `queue_dir`: where each forwarding destination keeps its on-disk queue and dead letters.
    package var queueDirectory = "./stitch-data/queues"
    /// `destinations:` from the file; empty means the embedded store at `db`.
    package var destinations: [DestinationConfiguration] = []
    /// `--forward URL` (repeatable) / `STITCH_FORWARD` (comma-separated): OTLP/HTTP destinations added
    /// to the others.
    package var forward: [String] = []
    /// `cluster_self` (`cluster: { self: … }` in the file): this member's address; empty means no cluster.
    package var clusterSelf = ""
    /// `cluster_peers` (`cluster: { peers: [...] }`; comma-separated in the environment and flags).
    package var clusterPeers: [String] = []
    package var clusterHealthInterval: Duration = .seconds(1)
    package var clusterFailureTimeout: Duration = .seconds(5)
    package var clusterResolveInterval: Duration = .seconds(30)
    package var clusterQueueMaxBytes = 1 << 30
    /// `cluster_peer_protocol`: grpc (default) or http.
    package var clusterPeerProtocol: ClusterConfiguration.PeerProtocol = .grpc

    /// The cluster settings, nil when this instance runs alone.
    package var cluster: ClusterConfiguration? {
        guard let address = ListenAddress(clusterSelf) else { return nil }
        var cluster = ClusterConfiguration(selfAddress: address.description, peers: clusterPeers)
        cluster.healthInterval = clusterHealthInterval
        cluster.failureTimeout = clusterFailureTimeout
        cluster.resolveInterval = clusterResolveInterval
        cluster.queueMaxBytes = clusterQueueMaxBytes
        cluster.peerProtocol = clusterPeerProtocol
        if let grpcListen { cluster.grpcPortOffset = grpcListen.port - listen.port }
        return cluster
    }

    /// What the pipeline delivers to: the configured destinations (or the embedded store), plus `--forward`.
    package var effectiveDestinations: [DestinationConfiguration] {
        let base = destinations.isEmpty
            ? [DestinationConfiguration(name: "store", kind: .store(path: db))]
            : destinations
        return base + forward.enumerated().map { DestinationConfiguration.forward($1, index: $0 + 1) }
    }

    /// The store the query API and CLI read: the first store destination, else `db`.
    package var queryStorePath: String {
        for destination in effectiveDestinations {
            if case .store(let path) = destination.kind { return path }
        }
        return db
    }

    package init() {}
}

/// One problem found in the configuration: where (key and source) and why.
package struct ConfigurationProblem: Sendable, Equatable, CustomStringConvertible {
    package var keyPath: String
    package var source: String
    package var reason: String
    package var description: String { "\(keyPath) (\(source)): \(reason)" }
}

/// All problems at once, so that a user fixes the configuration in one go.
package struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    package var problems: [ConfigurationProblem]
    package var description: String {
        "invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// A configuration key: its names in every source, its default and how it is parsed.
package struct ConfigurationOption: Sendable {
    package var key: String
    package var help: String
    package var defaultValue: @Sendable (StitchConfiguration) -> String
    let apply: @Sendable (inout StitchConfiguration, String) -> String?

    package var flag: String { "--" + key.replacingOccurrences(of: "_", with: "-") }
    package var environmentVariable: String { "STITCH_" + key.uppercased() }
}

extension StitchConfiguration {
    /// Every option; the file, environment and flags are derived from this table.
    package static let options: [ConfigurationOption] = [
        string("listen", "HOST:PORT of the OTLP/HTTP receiver and query API", { $0.listen.description }) { config, value in
            guard let address = ListenAddress(value) else { return "'\(value)' is not HOST:PORT (e.g. 127.0.0.1:4318)" }
            config.listen = address
            return nil
        },
        string("grpc_listen", "HOST:PORT of the OTLP/gRPC receiver; empty turns it off", { $0.grpcListen?.description ?? "" }) { config, value in
            if value.trimmingCharacters(in: .whitespaces).isEmpty {
                config.grpcListen = nil
                return nil
            }
            guard let address = ListenAddress(value) else { return "'\(value)' is not HOST:PORT (e.g. 127.0.0.1:4317), nor empty (off)" }
            config.grpcListen = address
            return nil
        },
        string("db", "the store: a SQLite path, or a postgresql:// URL", { $0.db }) { config, value in
            guard !value.isEmpty else { return "must not be empty" }
            if PostgresURL.isPostgresURL(value) {
                do { _ = try PostgresURL(value) } catch { return "\(error)" }
            }
            config.db = value
            return nil
        },
        string("default_experiment_id", "experiment for requests without x-mlflow-experiment-id", { $0.defaultExperimentID }) { config, value in
            guard !value.isEmpty, value.utf8.allSatisfy({ (48...57).contains($0) }) else {
                return "'\(value)' is not a non-negative integer experiment id"
            }
            config.defaultExperimentID = value
            return nil
        },
        duration("idle_timeout", "release a closed trace after it has been quiet this long", \.assembler.idleTimeout,
                 .milliseconds(1) ... .seconds(86400)),
        duration("max_trace_age", "release any trace this long after its first span", \.assembler.maxTraceAge,
                 .milliseconds(1) ... .seconds(86400)),
        count("max_spans_per_trace", "release a trace in parts above this many spans", \.assembler.maxSpansPerTrace, 1 ... 10_000_000),
        count("max_traces", "buffered traces at most; the oldest are released early", \.assembler.maxTraces, 1 ... 10_000_000),
        size("max_buffered_bytes", "request bytes the buffered spans hold at most; the oldest traces are released early", \.assembler.maxBufferedBytes,
             1 << 10 ... 1 << 40),
        duration("late_window", "how long released trace ids are remembered for late spans", \.assembler.lateWindow,
                 .zero ... .seconds(7 * 86400)),
        size("max_body_size", "request body or gRPC message limit, compressed and decompressed (413 / RESOURCE_EXHAUSTED over it)", \.maxBodySize, 1 << 10 ... 1 << 30),
        count("max_connections", "open connections at most", \.maxConnections, 1 ... 1_000_000),
        size("store_queue_max_bytes", "finished traces waiting for the store; over it requests get 429 (503 while a PostgreSQL store is unreachable)", \.storeQueueMaxBytes,
             1 << 10 ... 1 << 40),
        count("store_batch_max_traces", "traces per store transaction at most", \.storeBatchMaxTraces, 1 ... 1_000_000),
        duration("retry_after", "delay announced in Retry-After when refusing under pressure", \.retryAfter, .seconds(1) ... .seconds(3600)),
        duration("shutdown_timeout", "graceful shutdown longer than this ends the process with exit status 3", \.shutdownTimeout,
                 .milliseconds(100) ... .seconds(86400)),
        string("queue_dir", "directory of the forwarding destinations' on-disk queues", { $0.queueDirectory }) { config, value in
            guard !value.isEmpty else { return "must not be empty" }
            config.queueDirectory = value
            return nil
        },
        string("cluster_self", "this cluster member's HOST:PORT as its peers reach it (its OTLP/HTTP listen address); empty: no cluster",
               { $0.clusterSelf }) { config, value in
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            guard trimmed.isEmpty || ListenAddress(trimmed) != nil else { return "'\(value)' is not HOST:PORT (e.g. 10.0.0.1:4318)" }
            config.clusterSelf = trimmed
            return nil
        },
        string("cluster_peers", "the other members, HOST:PORT each, comma-separated; a DNS name stands for every address it resolves to",
               { $0.clusterPeers.joined(separator: ",") }) { config, value in
            let peers = value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if let bad = peers.first(where: { ListenAddress($0) == nil }) { return "'\(bad)' is not HOST:PORT (e.g. 10.0.0.2:4318)" }
            config.clusterPeers = peers
            return nil
        },
        duration("cluster_health_interval", "how often each cluster member's /healthz is asked", \.clusterHealthInterval,
                 .milliseconds(100) ... .seconds(3600)),
        duration("cluster_failure_timeout", "a member silent this long loses its share of traces to the others", \.clusterFailureTimeout,
                 .milliseconds(200) ... .seconds(86400)),
        duration("cluster_resolve_interval", "how often DNS names among cluster_peers are resolved again", \.clusterResolveInterval,
                 .seconds(1) ... .seconds(86400)),
        size("cluster_queue_max_bytes", "disk queue per cluster member for spans of traces it owns", \.clusterQueueMaxBytes,
             1 << 20 ... 1 << 40),
        string("cluster_peer_protocol", "how spans go to the member that owns their trace: grpc (to its grpc_listen port) or http",
               { $0.clusterPeerProtocol.rawValue }) { config, value in
            guard let choice = ClusterConfiguration.PeerProtocol(rawValue: value.lowercased()) else {
                return "'\(value)' is not grpc or http"
            }
            config.clusterPeerProtocol = choice
            return nil
        },
        string("log_level", "trace, debug, info, notice, warning, error or critical", { $0.logLevel.rawValue }) { config, value in
            guard let level = Logger.Level(rawValue: value.lowercased()) else {
                return "'\(value)' is not one of trace, debug, info, notice, warning, error, critical"
            }
            config.logLevel = level
            return nil
        },
    ]

    private static func string(_ key: String, _ help: String, _ current: @escaping @Sendable (StitchConfiguration) -> String,
                               _ apply: @escaping @Sendable (inout StitchConfiguration, String) -> String?) -> ConfigurationOption {
        ConfigurationOption(key: key, help: help, defaultValue: current, apply: apply)
    }

    private static func duration(_ key: String, _ help: String, _ path: WritableKeyPath<StitchConfiguration, Duration> & Sendable,
                                 _ range: ClosedRange<Duration>) -> ConfigurationOption {
        ranged(key, help, path, range: ConfigValues.format(range.lowerBound) + "–" + ConfigValues.format(range.upperBound),
               format: ConfigValues.format) { ConfigValues.duration($0, within: range) }
    }

    private static func size(_ key: String, _ help: String, _ path: WritableKeyPath<StitchConfiguration, Int> & Sendable,
                             _ range: ClosedRange<Int>) -> ConfigurationOption {
        ranged(key, help, path, range: ConfigValues.format(size: range.lowerBound) + "–" + ConfigValues.format(size: range.upperBound),
               format: { ConfigValues.format(size: $0) }) { ConfigValues.size($0, within: range) }
    }

    private static func count(_ key: String, _ help: String, _ path: WritableKeyPath<StitchConfiguration, Int> & Sendable,
                              _ range: ClosedRange<Int>) -> ConfigurationOption {
        ranged(key, help, path, range: "\(range.lowerBound)–\(range.upperBound)", format: { String($0) }) {
            ConfigValues.count($0, within: range)
        }
    }

    /// An option whose value is parsed and range-checked by `parse`; its accepted range is part of its help.
    private static func ranged<Value: Sendable>(
        _ key: String, _ help: String, _ path: WritableKeyPath<StitchConfiguration, Value> & Sendable, range: String,
        format: @escaping @Sendable (Value) -> String, parse: @escaping @Sendable (String) -> Result<Value, ConfigValues.Problem>
    ) -> ConfigurationOption {
        ConfigurationOption(key: key, help: "\(help) (\(range))", defaultValue: { format($0[keyPath: path]) }) { config, value in
            switch parse(value) {
            case .success(let parsed):
                config[keyPath: path] = parsed
                return nil
            case .failure(let problem):
                return problem.reason
            }
        }
    }

    /// Builds the configuration from its sources and validates it, reporting every problem.
    ///
    /// - Parameters:
    ///   - file: the YAML file's contents and its path (for messages), if any.
    ///   - environment: the process environment (only `STITCH_<KEY>` for known keys is read).
    ///   - flags: values given on the command line, by key (`idle_timeout`).
    ///   - forwardFlags: `--forward` URLs (they replace `STITCH_FORWARD`).
    package static func load(file: (path: String, contents: String)?, environment: [String: String],
                            flags: [String: String], forwardFlags: [String] = []) throws(ConfigurationError) -> StitchConfiguration {
        var config = StitchConfiguration()
        var problems: [ConfigurationProblem] = []
        let byKey = Dictionary(uniqueKeysWithValues: options.map { ($0.key, $0) })

        if let file {
            do {
                let (values, destinations) = try fileValues(file.contents)
                if let destinations {
                    config.destinations = DestinationParser.parse(destinations, source: file.path, problems: &problems)
                }
                for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                    guard let option = byKey[key] else {
                        problems.append(.init(keyPath: key, source: file.path, reason: "unknown key; known keys: \(options.map(\.key).joined(separator: ", "))"))
                        continue
                    }
                    if let reason = option.apply(&config, value) {
                        problems.append(.init(keyPath: key, source: file.path, reason: reason))
                    }
                }
            } catch {
                problems.append(.init(keyPath: "(file)", source: file.path, reason: "\(error)"))
            }
        }
        for option in options {
            if let value = environment[option.environmentVariable], let reason = option.apply(&config, value) {
                problems.append(.init(keyPath: option.key, source: "env \(option.environmentVariable)", reason: reason))
            }
        }
        if let forward = environment["STITCH_FORWARD"] {
            config.forward = forward.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if !forwardFlags.isEmpty { config.forward = forwardFlags }
        for (key, value) in flags.sorted(by: { $0.key < $1.key }) {
            guard let option = byKey[key] else {
                problems.append(.init(keyPath: key, source: "flag", reason: "unknown option"))
                continue
            }
            if let reason = option.apply(&config, value) {
                problems.append(.init(keyPath: key, source: "flag \(option.flag)", reason: reason))
            }
        }
        // `db` names the embedded store used when no destinations are listed; with a list, the stores
        // are the list's `store` entries, and a `db` given as well would be silently unused.
        let dbSource = flags["db"] != nil ? "flag --db" : environment["STITCH_DB"] != nil ? "env STITCH_DB"
            : (file.flatMap { try? fileValues($0.contents).values["db"] } != nil ? file?.path : nil)
        if !config.destinations.isEmpty, let dbSource {
            problems.append(.init(keyPath: "db", source: dbSource, reason:
                "is not used when the configuration lists destinations:; list the store there (e.g. "
                + "`- name: local` with `store: { path: \(config.db) }`), or remove destinations: to use db"))
        }
        config.applyDefaultExperiment()
        problems += config.validate()
        guard problems.isEmpty else { throw ConfigurationError(problems: problems) }
        return config
    }

    /// `default_experiment_id` is the experiment of every trace whose requests named none, in every
    /// destination: the store's own default, and each `mlflow` and `mlflow_database` destination without an `experiment_id`.
    mutating func applyDefaultExperiment() {
        for index in destinations.indices {
            switch destinations[index].kind {
            case .mlflow(var settings) where settings.experimentID == nil:
                settings.experimentID = defaultExperimentID
                destinations[index].kind = .mlflow(settings)
            case .mlflowDatabase(var settings) where settings.experimentID == nil:
                settings.experimentID = defaultExperimentID
                destinations[index].kind = .mlflowDatabase(settings)
            default:
                continue
            }
        }
    }

    /// Cross-field and range checks (after every source is applied).
    package func validate() -> [ConfigurationProblem] {
        var problems: [ConfigurationProblem] = []
        func problem(_ key: String, _ reason: String) {
            guard !problems.contains(where: { $0.keyPath == key && $0.reason == reason }) else { return }
            problems.append(.init(keyPath: key, source: "validation", reason: reason))
        }
        for issue in assembler.problems { problem(issue.key, issue.reason) }
        // Each value within its option's range (a configuration built in code never went through parsing):
        // the option reads back its own formatted value.
        for option in Self.options {
            var copy = self
            if let reason = option.apply(&copy, option.defaultValue(self)) { problem(option.key, reason) }
        }
        var names = Set<String>()
        for (index, destination) in effectiveDestinations.enumerated() where !names.insert(destination.name).inserted {
            problem("destinations[\(index)].name", "'\(destination.name)' is used by another destination")
        }
        if !clusterSelf.isEmpty, clusterFailureTimeout <= clusterHealthInterval {
            problem("cluster_failure_timeout", "must be longer than cluster_health_interval (\(ConfigValues.format(clusterHealthInterval)))")
        }
        if !clusterSelf.isEmpty, clusterPeerProtocol == .grpc, grpcListen == nil {
            problem("cluster_peer_protocol", "grpc needs grpc_listen (members pass spans to each other's OTLP/gRPC receiver); set it or use http")
        }
        if clusterSelf.isEmpty, !clusterPeers.isEmpty {
            problem("cluster_peers", "needs cluster_self: the address the other members reach this one at")
        }
        for (index, url) in forward.enumerated() {
            for reason in OTLPHTTPExporterConfiguration(endpoint: url).problems() {
                problem("forward[\(index)]", reason)
            }
        }
        return problems
    }

    /// Top-level scalar keys of the YAML file, as strings, and the `destinations` list if present.
    static func fileValues(_ contents: String) throws -> (values: [String: String], destinations: Node?) {
        guard let node = try Yams.compose(yaml: contents) else { return ([:], nil) }
        guard case .mapping(let mapping) = node else {
            throw StitchError("the file must be a mapping of keys to values")
        }
        var values: [String: String] = [:]
        var destinations: Node?
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string else { throw StitchError("a key is not a string") }
            if key == "destinations" {
                destinations = valueNode
                continue
            }
            if key == "cluster" {
                // `cluster: { self: …, peers: [...], health_interval: … }`: the `cluster_*` keys.
                guard case .mapping(let cluster) = valueNode else { throw StitchError("'cluster' must be a mapping (self, peers, …)") }
                for (subKey, subValue) in cluster {
                    guard let name = subKey.string else { throw StitchError("a key under 'cluster' is not a string") }
                    switch subValue {
                    case .scalar(let scalar): values["cluster_\(name)"] = scalar.string
                    case .sequence(let items): values["cluster_\(name)"] = items.compactMap(\.string).joined(separator: ",")
                    default: throw StitchError("'cluster.\(name)' must be a value or a list")
                    }
                }
                continue
            }
            guard case .scalar(let scalar) = valueNode else {
                throw StitchError("'\(key)' must be a single value")
            }
            values[key] = scalar.string
        }
        return (values, destinations)
    }

    /// Loads from the file named by `configPath` (else `STITCH_CONFIG`, else `Config/stitch.yaml`
    /// when it exists in the working directory), the environment and `flags`.
    package static func load(configPath: String?, flags: [String: String], forwardFlags: [String] = [],
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> StitchConfiguration {
        var file: (path: String, contents: String)?
        if let path = configPath ?? environment["STITCH_CONFIG"] {
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(problems: [.init(keyPath: "config", source: "--config", reason: "cannot read '\(path)'")])
            }
            file = (path, contents)
        } else if let contents = try? String(contentsOfFile: "Config/stitch.yaml", encoding: .utf8) {
            file = ("Config/stitch.yaml", contents)
        }
        return try load(file: file, environment: environment, flags: flags, forwardFlags: forwardFlags)
    }

    /// The Retry-After value in whole seconds.
    package var retryAfterSeconds: Int { max(1, Int(retryAfter.components.seconds)) }
}

/// A plain message error for the core.
package struct StitchError: Error, Sendable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}
