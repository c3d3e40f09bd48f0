import Foundation
import OTLPWire
import StitchCore
import StitchTestSupport
import Testing

@Suite("Cluster: ownership, member health, configuration")
struct ClusterMembershipTests {
    let members = ["10.0.0.1:4318", "10.0.0.2:4318", "10.0.0.3:4318"]
    let ids = (0..<30_000).map { TraceID(high: UInt64($0) &* 0x9E37_79B9_7F4A_7C15, low: UInt64($0) ^ 0x5bd1_e995) }

    func view(of name: String, among names: [String]) -> ClusterMembership {
        ClusterMembership(selfName: name, peers: names, failureTimeout: .seconds(5))
    }

    @Test("every member computes the same owner, and each owns about a third")
    func sameOwnerEverywhere() {
        let views = members.map { view(of: $0, among: members) }
        var share: [String: Int] = [:]
        for id in ids {
            let owners = Set(views.map { $0.owner(of: id) })
            #expect(owners.count == 1)
            share[owners.first!, default: 0] += 1
        }
        for member in members {
            let fraction = Double(share[member] ?? 0) / Double(ids.count)
            #expect((0.31...0.36).contains(fraction), "\(member) owns \(fraction)")
        }
    }

    @Test("a member joining takes about 1/n of the traces, all from the others; leaving gives back only its own")
    func joinAndLeaveMoveOneNth() {
        let before = view(of: members[0], among: members)
        let joined = members + ["10.0.0.4:4318"]
        let after = view(of: members[0], among: joined)
        var moved = 0
        for id in ids where before.owner(of: id) != after.owner(of: id) {
            moved += 1
            #expect(after.owner(of: id) == "10.0.0.4:4318", "a trace moved between two old members")
        }
        let fraction = Double(moved) / Double(ids.count)
        #expect((0.22...0.28).contains(fraction), "moved \(fraction) on join (1/4 expected)")

        // The new member leaves again (its peers list no longer names it): exactly its traces move back.
        let left = view(of: members[0], among: joined)
        left.setPeers(members)
        for id in ids { #expect(left.owner(of: id) == before.owner(of: id)) }
    }

    @Test("a peer is down after failure_timeout without an answer, up again at its first answer; its traces go to the others meanwhile")
    func healthTiming() {
        let start = ContinuousClock.now
        let membership = ClusterMembership(selfName: members[0], peers: members, failureTimeout: .seconds(5), now: start)
        let peer = members[1]
        let owned = ids.filter { membership.owner(of: $0) == peer }
        #expect(!owned.isEmpty)
        #expect(membership.report(peer, answered: false, now: start + .seconds(4)) == nil, "silent for less than failure_timeout")
        #expect(membership.isAlive(peer))
        #expect(membership.report(peer, answered: true, now: start + .seconds(4.5)) == nil)
        // Silence is counted from the last answer.
        #expect(membership.report(peer, answered: false, now: start + .seconds(9)) == nil)
        #expect(membership.report(peer, answered: false, now: start + .seconds(9.5)) == .down)
        #expect(!membership.isAlive(peer))
        #expect(membership.members.map(\.state) == [.this, .down, .up])
        for id in owned.prefix(500) { #expect(membership.owner(of: id) != peer) }
        #expect(membership.report(peer, answered: true, now: start + .seconds(10)) == .up)
        for id in owned.prefix(500) { #expect(membership.owner(of: id) == peer) }
    }

    @Test("cluster settings from YAML and the environment, with the gRPC port derived from this instance's two ports")
    func configuration() throws {
        let yaml = """
        listen: 0.0.0.0:5318
        grpc_listen: 0.0.0.0:5317
        cluster:
          self: 10.0.0.1:5318
          peers: [10.0.0.2:5318, stitch-headless.default.svc:5318]
          failure_timeout: 3s
          health_interval: 500ms
        """
        let config = try StitchConfiguration.load(file: ("c.yaml", yaml), environment: ["STITCH_CLUSTER_QUEUE_MAX_BYTES": "64MiB"], flags: [:])
        let cluster = try #require(config.cluster)
        #expect(cluster.selfAddress == "10.0.0.1:5318")
        #expect(cluster.peers == ["10.0.0.2:5318", "stitch-headless.default.svc:5318"])
        #expect(cluster.failureTimeout == .seconds(3))
        #expect(cluster.healthInterval == .milliseconds(500))
        #expect(cluster.queueMaxBytes == 64 << 20)
        #expect(cluster.peerProtocol == .grpc)
        #expect(cluster.grpcPortOffset == -1)

        let alone = try StitchConfiguration.load(file: nil, environment: [:], flags: [:])
        #expect(alone.cluster == nil)

        let http = try StitchConfiguration.load(file: nil, environment: ["STITCH_CLUSTER_PEERS": "10.0.0.2:4318, 10.0.0.3:4318"],
                                                flags: ["cluster_self": "10.0.0.1:4318", "cluster_peer_protocol": "HTTP", "grpc_listen": ""])
        #expect(http.cluster?.peers == ["10.0.0.2:4318", "10.0.0.3:4318"])
        #expect(http.cluster?.peerProtocol == .http)
    }

    @Test("cluster settings that cannot work are refused, each with its key")
    func configurationProblems() throws {
        func keys(_ flags: [String: String]) -> Set<String> {
            do {
                _ = try StitchConfiguration.load(file: nil, environment: [:], flags: flags)
                return []
            } catch {
                return Set(error.problems.map(\.keyPath))
            }
        }
        #expect(keys(["cluster_peers": "10.0.0.2:4318"]) == ["cluster_peers"])
        #expect(keys(["cluster_self": "10.0.0.1:4318", "cluster_failure_timeout": "1s", "cluster_health_interval": "1s"]) == ["cluster_failure_timeout"])
        #expect(keys(["cluster_self": "10.0.0.1:4318", "grpc_listen": ""]) == ["cluster_peer_protocol"])
        #expect(keys(["cluster_self": "10.0.0.1:4318", "cluster_peer_protocol": "quic"]) == ["cluster_peer_protocol"])
        #expect(keys(["cluster_self": "nowhere"]) == ["cluster_self"])
        #expect(keys(["cluster_self": "10.0.0.1:4318", "cluster_peers": "10.0.0.2"]) == ["cluster_peers"])
    }
}

/// Two whole instances sharing one PostgreSQL store, each receiving half of every trace.
@Suite struct ClusterPipelineTests {
    func post(_ port: Int, _ body: [UInt8]) async throws -> Int {
        try await RawHTTPClient(port: port).request(method: "POST", path: "/v1/traces",
                                                    headers: [("Content-Type", "application/x-protobuf")], body: body).status
    }

    func get(_ port: Int, _ path: String) async throws -> String {
        String(decoding: try await RawHTTPClient(port: port).request(method: "GET", path: path, headers: [], body: []).body, as: UTF8.self)
    }

    /// The sum of a metric's samples, every label set.
    func metric(_ port: Int, _ name: String) async throws -> Double {
        try await get(port, "/metrics").split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    @Test("the spans of one trace reach two members; the owner assembles them and the store holds every trace whole, never split",
          arguments: ["grpc", "http"])
    func tracesJoinAtTheirOwner(peerProtocol: String) async throws {
        let server = try PostgresTestServer()
        defer { server.remove() }
        let database = try server.makeDatabase()
        // Each member's gRPC receiver is at its HTTP port + 1 (the offset the members derive).
        let ports = [try StitchHarness.freePortPair(), try StitchHarness.freePortPair()]
        let names = ports.map { "127.0.0.1:\($0)" }
        func flags(_ index: Int) -> [String: String] {
            ["db": server.url(database: database), "listen": names[index], "grpc_listen": "127.0.0.1:\(ports[index] + 1)",
             "cluster_self": names[index], "cluster_peers": names.joined(separator: ","), "cluster_peer_protocol": peerProtocol,
             "cluster_health_interval": "200ms", "idle_timeout": "500ms"]
        }
        let traces = SyntheticTraces(traceCount: 200, spansPerService: 3, services: ["planner", "tool"], seed: 77)
        try await StitchHarness.withStitch(flags: flags(0)) { first in
            try await StitchHarness.withStitch(flags: flags(1)) { second in
                let health = try await get(first.port, "/healthz")
                #expect(health.contains("member \(names[0]) self") && health.contains("member \(names[1]) up"), "\(health)")
                for start in stride(from: 0, to: 200, by: 20) {
                    for request in traces.requests(traces: start..<start + 20) {
                        // The planner's spans go to the first member, the tool's to the second.
                        #expect(try await post(request.service == "planner" ? first.port : second.port, request.body) == 200)
                    }
                }
                let total = traces.traceCount * traces.spansPerTrace
                _ = try await StitchHarness.poll("every span stored", seconds: 60) { () -> Bool? in
                    let count = Int((try? server.psql("SELECT count(*) FROM spans", database: database))?
                        .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
                    return count == total ? true : nil
                }
                let perTrace = try server.psql("SELECT count(*) FROM trace_info", database: database)
                #expect(perTrace.trimmingCharacters(in: .whitespacesAndNewlines) == "\(traces.traceCount)")
                // Both members passed spans on (each received half of every trace), none was split.
                for port in [first.port, second.port] {
                    #expect(try await metric(port, "stitch_cluster_spans_forwarded_total") > 0)
                    #expect(try await metric(port, "stitch_cluster_split_traces_total") == 0)
                }
                let forwarded = try await metric(first.port, "stitch_cluster_spans_forwarded_total")
                    + metric(second.port, "stitch_cluster_spans_forwarded_total")
                #expect(forwarded == Double(total / 2), "each trace's other half was passed on once")
            }
        }
    }

    @Test("a member that never answers loses its share after failure_timeout: what was queued for it goes to the new owner")
    func queuedSpansOfADownMemberAreRerouted() async throws {
        let server = try PostgresTestServer()
        defer { server.remove() }
        let database = try server.makeDatabase()
        let port = try StitchHarness.freePortPair()
        // The second member is named but never runs; it counts as up until failure_timeout has passed.
        let missing = "127.0.0.1:\(try StitchHarness.freePort())"
        let flags = ["db": server.url(database: database), "listen": "127.0.0.1:\(port)", "grpc_listen": "127.0.0.1:\(port + 1)",
                     "cluster_self": "127.0.0.1:\(port)", "cluster_peers": missing,
                     "cluster_health_interval": "200ms", "cluster_failure_timeout": "1500ms"]
        let traces = SyntheticTraces(traceCount: 100, spansPerService: 2, services: ["planner", "tool"], seed: 78)
        try await StitchHarness.withStitch(flags: flags) { stitch in
            for request in traces.requests(traces: 0..<100) { #expect(try await post(stitch.port, request.body) == 200) }
            let queued = try await metric(stitch.port, "stitch_cluster_spans_forwarded_total")
            #expect(queued > 0, "some traces were the missing member's while it counted as up")
            _ = try await StitchHarness.poll("every span stored", seconds: 60) { () -> Bool? in
                let count = Int((try? server.psql("SELECT count(*) FROM spans", database: database))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
                return count == traces.traceCount * traces.spansPerTrace ? true : nil
            }
            #expect(try await metric(stitch.port, "stitch_cluster_traces_rerouted_total") > 0)
            #expect(try await get(stitch.port, "/healthz").contains("member \(missing) down"))
            let stored = try server.psql("SELECT count(*) FROM trace_info", database: database)
            #expect(stored.trimmingCharacters(in: .whitespacesAndNewlines) == "\(traces.traceCount)")
        }
    }
}
