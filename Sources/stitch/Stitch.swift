import ArgumentParser
import Foundation
import Logging
import StitchCore
import Synchronization
import SQLiteStore
import TraceModel

@main
struct Stitch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stitch",
        abstract: "Receives OTLP traces, joins each trace across services, stores it whole.",
        subcommands: [Serve.self, Traces.self],
        defaultSubcommand: Serve.self)
}

/// Exit status for an invalid configuration, or a destination that cannot start.
let configurationExitCode: Int32 = 2
/// Exit status when graceful shutdown outlives `shutdown_timeout`.
let shutdownTimeoutExitCode: Int32 = 3

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the collector (the default subcommand).",
        discussion: "Flags override STITCH_* environment variables, which override the config file, which overrides defaults.")

    @Option(help: "YAML configuration file (default: Config/stitch.yaml when present).")
    var config: String?

    // One flag per configuration key (StitchConfiguration.options), same name in kebab case.
    @Option(help: "HOST:PORT to listen on (default 127.0.0.1:4318).") var listen: String?
    @Option(help: "HOST:PORT of the OTLP/gRPC receiver; empty turns it off (default 127.0.0.1:4317).") var grpcListen: String?
    @Option(help: "The store: a SQLite path, or a postgresql:// URL (default ./stitch-data/stitch.db).") var db: String?
    @Option(help: "Experiment for requests without x-mlflow-experiment-id (default 0).") var defaultExperimentId: String?
    @Option(help: "Release a closed trace after this quiet time (default 2s).") var idleTimeout: String?
    @Option(help: "Release any trace this long after its first span (default 30s).") var maxTraceAge: String?
    @Option(help: "Release a trace in parts above this many spans (default 10000).") var maxSpansPerTrace: String?
    @Option(help: "Buffered traces at most (default 100000).") var maxTraces: String?
    @Option(help: "Request bytes held by buffered spans at most (default 256MiB).") var maxBufferedBytes: String?
    @Option(help: "How long released traces accept late spans (default 10m).") var lateWindow: String?
    @Option(help: "Request body / gRPC message limit, compressed and decompressed (default 64MiB).") var maxBodySize: String?
    @Option(help: "Open connections at most (default 4096).") var maxConnections: String?
    @Option(help: "Bytes of finished traces waiting for the store before 503 (default 256MiB).") var storeQueueMaxBytes: String?
    @Option(help: "Traces per store transaction at most (default 1000).") var storeBatchMaxTraces: String?
    @Option(help: "Retry-After announced under pressure (default 1s).") var retryAfter: String?
    @Option(help: "Graceful shutdown longer than this exits with status 3 (default 30s).") var shutdownTimeout: String?
    @Option(help: "trace, debug, info, notice, warning, error, critical (default info).") var logLevel: String?
    @Option(help: "Directory of the forwarding destinations' on-disk queues (default ./stitch-data/queues).") var queueDir: String?
    @Option(name: .customLong("forward"), help: "Also forward finished traces to this OTLP/HTTP endpoint (repeatable).")
    var forward: [String] = []
    @Option(help: "This cluster member's HOST:PORT as its peers reach it (default: no cluster).") var clusterSelf: String?
    @Option(help: "The other cluster members, HOST:PORT each, comma-separated (a DNS name: every address it resolves to).")
    var clusterPeers: String?
    @Option(help: "How often each member's /healthz is asked (default 1s).") var clusterHealthInterval: String?
    @Option(help: "A member silent this long loses its share of traces (default 5s).") var clusterFailureTimeout: String?
    @Option(help: "How often DNS names among the peers are resolved again (default 30s).") var clusterResolveInterval: String?
    @Option(help: "Disk queue per cluster member (default 1GiB).") var clusterQueueMaxBytes: String?
    @Option(help: "How spans reach the member that owns their trace: grpc or http (default grpc).") var clusterPeerProtocol: String?

    var flags: [String: String] {
        let pairs: [(String, String?)] = [
            ("listen", listen), ("grpc_listen", grpcListen), ("db", db), ("default_experiment_id", defaultExperimentId),
            ("idle_timeout", idleTimeout), ("max_trace_age", maxTraceAge), ("max_spans_per_trace", maxSpansPerTrace),
            ("max_traces", maxTraces), ("max_buffered_bytes", maxBufferedBytes), ("late_window", lateWindow),
            ("max_body_size", maxBodySize), ("max_connections", maxConnections),
            ("store_queue_max_bytes", storeQueueMaxBytes), ("store_batch_max_traces", storeBatchMaxTraces),
            ("retry_after", retryAfter), ("shutdown_timeout", shutdownTimeout), ("log_level", logLevel), ("queue_dir", queueDir),
            ("cluster_self", clusterSelf), ("cluster_peers", clusterPeers), ("cluster_health_interval", clusterHealthInterval),
            ("cluster_failure_timeout", clusterFailureTimeout), ("cluster_resolve_interval", clusterResolveInterval),
            ("cluster_queue_max_bytes", clusterQueueMaxBytes), ("cluster_peer_protocol", clusterPeerProtocol),
        ]
        return Dictionary(uniqueKeysWithValues: pairs.compactMap { key, value in value.map { (key, $0) } })
    }

    func run() async throws {
        let configuration: StitchConfiguration
        do {
            configuration = try StitchConfiguration.load(configPath: config, flags: flags, forwardFlags: forward)
        } catch {
            FileHandle.standardError.write(Data("stitch: \(error)\n".utf8))
            throw ExitCode(configurationExitCode)
        }
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "stitch")
        let started = ContinuousClock.now
        HeapArenas.limitCount()
        let application = StitchApplication(configuration: configuration, logger: logger)
        // Ready once every receiver listens: OTLP/HTTP, and OTLP/gRPC unless it is off.
        let ready = ReadyGate(waitingFor: configuration.grpcListen == nil ? 1 : 2) { listening in
            logger.info("stitch is ready", metadata: [
                "listen": "\(listening.joined(separator: ", "))",
                "startup.ms": "\((ContinuousClock.now - started) / .milliseconds(1))",
            ])
            let released = CodePages.release()
            logger.debug("start-up code pages unmapped", metadata: ["bytes": "\(released)"])
        }
        do {
            try await application.run(onListening: { address in
                ready.listening("http \(address.ipAddress ?? "?"):\(address.port ?? 0)")
            }, onGRPCListening: { port in
                ready.listening("grpc \(configuration.grpcListen?.host ?? "?"):\(port)")
            }, onShutdownTimeout: { error in
                // Services that do not end even when cancelled must not keep the process alive.
                FileHandle.standardError.write(Data("stitch: \(error)\n".utf8))
                Foundation.exit(shutdownTimeoutExitCode)
            })
        } catch let error as DestinationStartupError {
            FileHandle.standardError.write(Data("stitch: \(error)\n".utf8))
            throw ExitCode(configurationExitCode)
        } catch let error as ListenerStartupError {
            FileHandle.standardError.write(Data("stitch: \(error)\n".utf8))
            throw ExitCode(configurationExitCode)
        }
        logger.info("stitch stopped")
    }
}

/// Calls `onReady` once, with what each listener reported, when the last of `count` reports.
final class ReadyGate: Sendable {
    private let state: Mutex<[String]>
    private let count: Int
    private let onReady: @Sendable ([String]) -> Void

    init(waitingFor count: Int, onReady: @escaping @Sendable ([String]) -> Void) {
        self.state = Mutex([])
        self.count = count
        self.onReady = onReady
    }

    func listening(_ description: String) {
        let all: [String]? = state.withLock { listening in
            listening.append(description)
            return listening.count == count ? listening.sorted() : nil
        }
        if let all { onReady(all) }
    }
}

struct Traces: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Query stored traces (works while a server is writing).",
        subcommands: [Search.self, Get.self])

    struct StoreOptions: ParsableArguments {
        @Option(help: "The store: a SQLite path or a postgresql:// URL (default: the configured db, ./stitch-data/stitch.db).") var db: String?
        @Option(help: "YAML configuration file to take the db path from.") var config: String?

        func open() async throws -> any TraceStore {
            // `--db` names the store to read; otherwise the configuration's query store.
            let path: String
            if let db {
                path = db
            } else {
                do {
                    path = try StitchConfiguration.load(configPath: config, flags: [:]).queryStorePath
                } catch {
                    FileHandle.standardError.write(Data("stitch: \(error)\n".utf8))
                    throw ExitCode(configurationExitCode)
                }
            }
            do {
                return try await StoreOpening.open(path, readOnly: true)
            } catch {
                FileHandle.standardError.write(Data("stitch: \(error)\n".utf8))
                throw ExitCode.failure
            }
        }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List traces, newest first (one row per trace).")

        @OptionGroup var store: StoreOptions
        @Option(name: .customLong("experiment-id"), help: "Only this experiment (repeatable).") var experimentIDs: [String] = []
        @Option(help: "MLflow filter string, e.g. \"tag.service.name = 'api' AND status = 'OK'\".") var filter: String?
        @Option(help: "At most this many traces (default 100).") var maxResults: Int = 100
        @Option(help: "Continue from a previous page (printed with --json).") var pageToken: String?
        @Flag(help: "Print MLflow's JSON ({\"traces\": [...], \"next_page_token\": ...}).") var json = false

        func run() async throws {
            let store = try await self.store.open()
            let page: TraceSearchPage
            do {
                page = try await store.searchTraces(TraceQuery(experimentIDs: experimentIDs, filter: filter,
                                                   maxResults: maxResults, pageToken: pageToken))
                try? await store.close()
            } catch {
                FileHandle.standardError.write(Data("stitch: \(error)\n".utf8))
                throw ExitCode.failure
            }
            if json {
                FileHandle.standardOutput.write(page.mlflowJSON())
                print()
            } else {
                print(TraceRendering.table(page.traces), terminator: "")
                if let token = page.nextPageToken { print("more: --page-token \(token)") }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one trace: the span tree, service by service.")

        @OptionGroup var store: StoreOptions
        @Argument(help: "Trace id: tr-<32 hex> (or the 32 hex alone).") var id: String
        @Flag(help: "Print MLflow's Trace JSON (loadable by mlflow.entities.Trace.from_json).") var json = false
        @Flag(help: "Show the spans of the traces this one called (MLflow AI Gateway traces) under the span that called them.")
        var linked = false

        func validate() throws {
            if json && linked { throw ValidationError("--linked shows linked traces in the span tree; it cannot be combined with --json") }
        }

        func run() async throws {
            let store = try await self.store.open()
            let requestID = id.hasPrefix("tr-") ? id : "tr-" + id.lowercased()
            let found: StoredTrace?
            var called: [String: StoredTrace]?
            do {
                found = try await store.storedTrace(id: requestID)
                if linked, let trace = found {
                    var traces: [String: StoredTrace] = [:]
                    for link in trace.calls where traces[link.linkedRequestID] == nil {
                        traces[link.linkedRequestID] = try await store.storedTrace(id: link.linkedRequestID)
                    }
                    called = traces
                }
                try? await store.close()
            } catch {
                FileHandle.standardError.write(Data("stitch: \(error)\n".utf8))
                throw ExitCode.failure
            }
            guard let trace = found else {
                FileHandle.standardError.write(Data("stitch: trace \(requestID) not found\n".utf8))
                throw ExitCode.failure
            }
            if json {
                FileHandle.standardOutput.write(trace.mlflowJSON())
                print()
            } else {
                print(TraceRendering.tree(trace, linked: called), terminator: "")
            }
        }
    }
}
