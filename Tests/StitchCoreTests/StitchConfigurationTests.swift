import Foundation
import StitchCore
import Testing

@Suite("Configuration: defaults, precedence, validation")
struct StitchConfigurationTests {
    @Test("with no sources the defaults of DESIGN.md apply")
    func defaults() throws {
        let config = try StitchConfiguration.load(file: nil, environment: [:], flags: [:])
        #expect(config.listen == ListenAddress(host: "127.0.0.1", port: 4318))
        #expect(config.db == "./stitch-data/stitch.db")
        #expect(config.assembler.idleTimeout == .seconds(2))
        #expect(config.assembler.maxTraceAge == .seconds(30))
        #expect(config.assembler.maxSpansPerTrace == 10_000)
        #expect(config.assembler.maxTraces == 100_000)
        #expect(config.assembler.maxBufferedBytes == 256 << 20)
        #expect(config.assembler.lateWindow == .seconds(600))
        #expect(config.maxBodySize == 64 << 20)
        #expect(config.defaultExperimentID == "0")
    }

    @Test("flags override STITCH_* environment, which overrides the file")
    func precedence() throws {
        let file = (path: "test.yaml", contents: "idle_timeout: 5s\nmax_traces: 10\ndb: /tmp/file.db\n")
        let env = ["STITCH_IDLE_TIMEOUT": "3s", "STITCH_DB": "/tmp/env.db", "STITCH_UNRELATED": "x"]
        let config = try StitchConfiguration.load(file: file, environment: env, flags: ["idle_timeout": "500ms"])
        #expect(config.assembler.idleTimeout == .milliseconds(500))
        #expect(config.db == "/tmp/env.db")
        #expect(config.assembler.maxTraces == 10)
    }

    @Test("every problem is reported at once with its key and source")
    func allProblems() throws {
        let file = (path: "bad.yaml", contents: "idle_timout: 2s\nmax_body_size: lots\n")
        do {
            _ = try StitchConfiguration.load(
                file: file, environment: ["STITCH_MAX_TRACE_AGE": "soon"],
                flags: ["listen": "localhost", "log_level": "loud", "max_traces": "0"])
            Issue.record("an invalid configuration was accepted")
        } catch {
            let keys = Set(error.problems.map(\.keyPath))
            #expect(keys == ["idle_timout", "max_body_size", "max_trace_age", "listen", "log_level", "max_traces"])
            #expect(error.problems.first { $0.keyPath == "max_trace_age" }?.source == "env STITCH_MAX_TRACE_AGE")
            #expect(error.problems.first { $0.keyPath == "listen" }?.source == "flag --listen")
            #expect(error.problems.first { $0.keyPath == "idle_timout" }?.reason.contains("unknown key") == true)
            #expect(error.description.contains("bad.yaml"))
        }
    }

    @Test("cross-field rules: idle_timeout must not exceed max_trace_age")
    func crossField() throws {
        #expect(throws: ConfigurationError.self) {
            try StitchConfiguration.load(file: nil, environment: [:], flags: ["idle_timeout": "1m", "max_trace_age": "30s"])
        }
    }

    @Test("durations and sizes in their human forms")
    func humanForms() {
        #expect(ConfigValues.duration("500ms") == .milliseconds(500))
        #expect(ConfigValues.duration("2s") == .seconds(2))
        #expect(ConfigValues.duration("10m") == .seconds(600))
        #expect(ConfigValues.duration("1.5s") == .milliseconds(1500))
        #expect(ConfigValues.duration("fast") == nil)
        #expect(ConfigValues.duration("-1s") == nil)
        #expect(ConfigValues.size("1MiB") == 1 << 20)
        #expect(ConfigValues.size("64MiB") == 64 << 20)
        #expect(ConfigValues.size("1KB") == 1000)
        #expect(ConfigValues.size("4096") == 4096)
        #expect(ConfigValues.size("a lot") == nil)
        #expect(ListenAddress("[::1]:4318") == ListenAddress(host: "::1", port: 4318))
        #expect(ListenAddress("127.0.0.1:70000") == nil)
    }

    @Test("Config/stitch.yaml documents every option with its default value")
    func shippedFileMatchesDefaults() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("Config/stitch.yaml").path
        let contents = try String(contentsOfFile: path, encoding: .utf8)
        let fromFile = try StitchConfiguration.load(file: (path, contents), environment: [:], flags: [:])
        #expect(fromFile == StitchConfiguration())
        for option in StitchConfiguration.options {
            #expect(contents.contains("\n\(option.key): "), "Config/stitch.yaml lacks \(option.key)")
        }
    }
}
