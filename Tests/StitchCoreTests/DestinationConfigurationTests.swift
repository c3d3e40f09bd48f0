import Exporters
import PostgresStore
import StitchCore
import Testing

@Suite("Destinations in the configuration")
struct DestinationConfigurationTests {
    @Test("the three kinds parse with their settings; no destination means the embedded store")
    func parsesKinds() throws {
        let yaml = """
        destinations:
          - name: jaeger
            otlp: { endpoint: "http://127.0.0.1:4318/v1/traces", compression: gzip, headers: { authorization: "Bearer x" }, timeout: 5s }
            traces: incomplete
            queue: { max_bytes: 64MiB, fsync: never }
            retry: { initial_interval: 200ms, max_interval: 2s }
          - name: mlflow
            mlflow: { tracking_uri: "http://127.0.0.1:5000", experiment_id: "1" }
          - name: local
            store: { path: /tmp/local.db }
        """
        let config = try StitchConfiguration.load(file: ("f.yaml", yaml), environment: [:], flags: [:], forwardFlags: ["http://127.0.0.1:9/v1/traces"])
        let destinations = config.effectiveDestinations
        #expect(destinations.map(\.name) == ["jaeger", "mlflow", "local", "forward-1"])
        guard case .otlp(let otlp) = destinations[0].kind else { Issue.record("not otlp"); return }
        #expect(otlp.headers == ["authorization": "Bearer x"])
        #expect(otlp.timeout == .seconds(5))
        #expect(destinations[0].traces == .incomplete)
        #expect(destinations[0].queueMaxBytes == 64 << 20)
        #expect(destinations[0].queueFsync == .never)
        #expect(destinations[0].retry.initialInterval == .milliseconds(200))
        guard case .mlflow(let mlflow) = destinations[1].kind else { Issue.record("not mlflow"); return }
        #expect(mlflow.experimentID == "1")
        #expect(!mlflow.experimentFromTrace)
        #expect(config.queryStorePath == "/tmp/local.db")

        let plain = try StitchConfiguration.load(file: nil, environment: [:], flags: ["db": "/tmp/x.db"])
        #expect(plain.effectiveDestinations.map(\.kind) == [.store(path: "/tmp/x.db")])
    }

    @Test("every destination problem is reported with its key path")
    func problems() {
        let yaml = """
        destinations:
          - name: a
            otlp: { compression: brotli }
          - name: a
            store: { path: /tmp/a.db }
          - otlp: { endpoint: "ftp://x" }
            mlflow: { tracking_uri: "http://x" }
          - name: b
            traces: some
            store: { path: /tmp/b.db, extra: 1 }
        """
        do {
            _ = try StitchConfiguration.load(file: ("f.yaml", yaml), environment: [:], flags: [:])
            Issue.record("accepted")
        } catch {
            let keys = Set(error.problems.map(\.keyPath))
            #expect(keys.contains("destinations[0].otlp.compression"))
            #expect(keys.contains("destinations[0].otlp.endpoint"))
            #expect(keys.contains("destinations[2].name"))
            #expect(keys.contains("destinations[2]"))
            #expect(keys.contains("destinations[3].traces"))
            #expect(keys.contains("destinations[3].store.extra"))
        }
    }

    @Test("otlp protocol grpc parses into the gRPC exporter's settings; http/protobuf stays the default")
    func parsesGRPC() throws {
        let yaml = """
        destinations:
          - name: collector
            otlp: { protocol: grpc, endpoint: "http://127.0.0.1:4317", compression: none, headers: { x-mlflow-experiment-id: "3" },
                    timeout: 2s, max_request_bytes: 1MiB }
          - name: http
            otlp: { protocol: http/protobuf, endpoint: "http://127.0.0.1:4318" }
          - name: default
            otlp: { endpoint: "http://127.0.0.1:4317" }
        """
        let config = try StitchConfiguration.load(file: ("f.yaml", yaml), environment: [:], flags: [:])
        let kinds = config.effectiveDestinations.map(\.kind)
        #expect(kinds[0] == .otlpGRPC(OTLPGRPCExporterConfiguration(
            endpoint: "http://127.0.0.1:4317", headers: ["x-mlflow-experiment-id": "3"], compression: .none,
            timeout: .seconds(2), maxRequestBytes: 1 << 20)))
        // The protocol is stated, never guessed from the port.
        #expect(kinds[1] == .otlp(OTLPHTTPExporterConfiguration(endpoint: "http://127.0.0.1:4318")))
        #expect(kinds[2] == .otlp(OTLPHTTPExporterConfiguration(endpoint: "http://127.0.0.1:4317")))
    }

    @Test("gRPC destination problems are reported with their key paths")
    func grpcProblems() {
        let yaml = """
        destinations:
          - name: a
            otlp: { protocol: http/2 }
          - name: b
            otlp: { protocol: grpc, endpoint: "https://x:4317/v1/traces", headers: { grpc-timeout: "1S" }, timeout: 0s }
          - name: c
            otlp: { protocol: grpc }
        """
        do {
            _ = try StitchConfiguration.load(file: ("f.yaml", yaml), environment: [:], flags: [:])
            Issue.record("accepted")
        } catch {
            let problems = error.problems.map { "\($0.keyPath): \($0.reason)" }
            #expect(problems.contains { $0.hasPrefix("destinations[0].otlp.protocol: 'http/2' is not http/protobuf or grpc") }, "\(problems)")
            #expect(problems.contains { $0.hasPrefix("destinations[1].otlp: endpoint: TLS") })
            #expect(problems.contains { $0.hasPrefix("destinations[1].otlp: endpoint: a gRPC endpoint has no path") })
            #expect(problems.contains { $0.hasPrefix("destinations[1].otlp: headers: 'grpc-timeout' is set by gRPC itself") })
            #expect(problems.contains { $0.hasPrefix("destinations[1].otlp.timeout") })
            #expect(problems.contains { $0.hasPrefix("destinations[2].otlp.endpoint: is required (e.g. http://127.0.0.1:4317)") })
        }
    }

    @Test("selection: complete-only and incomplete-only destinations; late fragments go everywhere")
    func selection() {
        #expect(DestinationConfiguration.Selection.complete.wants(true, isLate: false))
        #expect(!DestinationConfiguration.Selection.complete.wants(false, isLate: false))
        #expect(DestinationConfiguration.Selection.incomplete.wants(false, isLate: false))
        #expect(!DestinationConfiguration.Selection.incomplete.wants(true, isLate: false))
        #expect(DestinationConfiguration.Selection.complete.wants(false, isLate: true))
    }

    @Test("db beside a destinations list is refused, from every source, naming the source")
    func dbBesideDestinations() {
        let yaml = "destinations:\n  - name: local\n    store: { path: /tmp/a.db }\n"
        for (file, environment, flags, source) in [
            (yaml + "db: /tmp/b.db\n", [String: String](), [String: String](), "f.yaml"),
            (yaml, ["STITCH_DB": "/tmp/b.db"], [:], "env STITCH_DB"),
            (yaml, [:], ["db": "/tmp/b.db"], "flag --db"),
        ] {
            do {
                _ = try StitchConfiguration.load(file: ("f.yaml", file), environment: environment, flags: flags)
                Issue.record("accepted db from \(source)")
            } catch {
                #expect(error.problems.contains { $0.keyPath == "db" && $0.source == source }, "\(error.problems)")
            }
        }
        // Without a list, db is the store; with a list and no db, the list's store is queried.
        #expect((try? StitchConfiguration.load(file: nil, environment: [:], flags: ["db": "/tmp/b.db"]))?.queryStorePath == "/tmp/b.db")
        #expect((try? StitchConfiguration.load(file: ("f.yaml", yaml), environment: [:], flags: [:]))?.queryStorePath == "/tmp/a.db")
    }

    @Test("default_experiment_id is the experiment of an mlflow destination without experiment_id")
    func defaultExperiment() throws {
        let yaml = """
        default_experiment_id: "7"
        destinations:
          - name: own
            mlflow: { tracking_uri: "http://127.0.0.1:5000" }
          - name: fixed
            mlflow: { tracking_uri: "http://127.0.0.1:5000", experiment_id: "3" }
        """
        for flags in [[String: String](), ["default_experiment_id": "9"]] {
            let config = try StitchConfiguration.load(file: ("f.yaml", yaml), environment: [:], flags: flags)
            let expected = flags["default_experiment_id"] ?? "7"
            guard case .mlflow(let own) = config.effectiveDestinations[0].kind,
                  case .mlflow(let fixed) = config.effectiveDestinations[1].kind else {
                Issue.record("not mlflow destinations")
                return
            }
            // A trace naming its own experiment keeps it; one naming none gets the default.
            #expect(own.experiment(forTraceExperiment: nil) == expected)
            #expect(own.experiment(forTraceExperiment: "5") == "5")
            #expect(fixed.experiment(forTraceExperiment: nil) == "3")
        }
    }

    @Test("mlflow_database takes the URI mlflow server is given, and its experiment like an mlflow destination")
    func mlflowDatabase() throws {
        let yaml = """
        default_experiment_id: "7"
        destinations:
          - name: ui
            mlflow_database: { url: "sqlite:////var/lib/mlflow/mlflow.db" }
          - name: shared
            mlflow_database: { url: "postgresql+psycopg2://mlflow:secret@db.internal:5432/mlflow", experiment_id: "3" }
        """
        let config = try StitchConfiguration.load(file: ("f.yaml", yaml), environment: [:], flags: [:])
        guard case .mlflowDatabase(let ui) = config.effectiveDestinations[0].kind,
              case .mlflowDatabase(let shared) = config.effectiveDestinations[1].kind else {
            Issue.record("not mlflow_database destinations")
            return
        }
        #expect(try ui.database() == .sqlite(path: "/var/lib/mlflow/mlflow.db"))
        #expect(ui.experiment(forTraceExperiment: nil) == "7")
        #expect(ui.experiment(forTraceExperiment: "5") == "5")
        #expect(shared.experiment(forTraceExperiment: "5") == "3")
        guard case .postgres(let url) = try shared.database(environment: [:]) else {
            Issue.record("not PostgreSQL")
            return
        }
        #expect(url.description.contains("db.internal"))
        #expect(!url.description.contains("secret"))
        #expect(!shared.description.contains("secret"))
    }

    @Test("mlflow_database URIs as SQLAlchemy reads them; anything else is a problem naming the key")
    func mlflowDatabaseURIs() throws {
        #expect(try MLflowDatabaseConfiguration(uri: "sqlite:///mlflow.db").database() == .sqlite(path: "mlflow.db"))
        #expect(try MLflowDatabaseConfiguration(uri: "sqlite:////tmp/a%20b/mlflow.db?timeout=20").database()
                == .sqlite(path: "/tmp/a b/mlflow.db"))
        #expect(!MLflowDatabaseConfiguration(uri: "mysql://u@h/db").problems().isEmpty)
        #expect(!MLflowDatabaseConfiguration(uri: "sqlite:///:memory:").problems().isEmpty)
        #expect(MLflowDatabaseConfiguration(uri: "sqlite:///x.db", experimentID: "abc").problems()
            .contains { $0.hasPrefix("experiment_id:") })

        let yaml = """
        destinations:
          - name: a
            mlflow_database: { url: "mysql://u@h/db" }
          - name: b
            mlflow_database: { experiment_id: "1" }
        """
        do {
            _ = try StitchConfiguration.load(file: ("f.yaml", yaml), environment: [:], flags: [:])
            Issue.record("accepted")
        } catch {
            let keys = Set(error.problems.map(\.keyPath))
            #expect(keys.contains("destinations[0].mlflow_database"))
            #expect(keys.contains("destinations[1].mlflow_database.url"))
        }
    }
}
