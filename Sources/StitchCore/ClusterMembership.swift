import Foundation
import OTLPWire
import Synchronization

/// `cluster_*` settings: this member, its peers, and how their health is judged.
package struct ClusterConfiguration: Sendable, Equatable {
    /// `cluster_self`: this member as its peers reach it (its OTLP/HTTP `listen` address, or the
    /// address a load balancer or another host sees for it), `host:port`.
    package var selfAddress: String
    /// `cluster_peers`: the other members, `host:port` each. A host that is a DNS name stands for
    /// every address it resolves to (a Kubernetes headless service), re-resolved every
    /// `resolveInterval`; this member's own address among them is skipped.
    package var peers: [String]
    /// `cluster_health_interval`: how often each peer's `/healthz` is asked.
    package var healthInterval: Duration = .seconds(1)
    /// `cluster_failure_timeout`: a peer that has not answered for this long loses its share.
    package var failureTimeout: Duration = .seconds(5)
    /// `cluster_resolve_interval`: how often DNS names among the peers are resolved again.
    package var resolveInterval: Duration = .seconds(30)
    /// `cluster_queue_max_bytes`: the disk queue per peer.
    package var queueMaxBytes = 1 << 30
    /// `cluster_peer_protocol`: how spans are passed to their owner. gRPC (the default) keeps one
    /// HTTP/2 connection per member open and multiplexes calls on it; `http` uses OTLP/HTTP.
    package var peerProtocol: PeerProtocol = .grpc
    /// Where a member's OTLP/gRPC receiver is, relative to its name (its OTLP/HTTP address): the
    /// same host, at the port plus this offset. Derived from this instance's own `grpc_listen`
    /// and `listen` ports (4317 − 4318 = −1 with the defaults): every member keeps the same
    /// distance between its two ports.
    package var grpcPortOffset = -1

    package enum PeerProtocol: String, Sendable, CaseIterable {
        case grpc
        case http
    }

    package init(selfAddress: String, peers: [String]) {
        self.selfAddress = selfAddress
        self.peers = peers
    }
}

/// Who owns which trace: rendezvous (highest random weight) hashing over the members this instance
/// sees as alive. Each member scores every trace id; the highest score owns it. When a member joins
/// or leaves, only the traces it wins or won move (about 1/n of them), and every instance with the
/// same view picks the same owner without talking to the others.
package final class ClusterMembership: Sendable {
    package enum State: String, Sendable {
        case this = "self"
        case up
        case down
    }

    package struct Member: Sendable, Equatable {
        package var name: String
        package var state: State
    }

    package let selfName: String
    private let failureTimeout: Duration
    private let state: Mutex<Members>

    private struct Members {
        /// Peers by name: when each last answered (nil: never since it became a member), and since when it is a member.
        var peers: [String: (lastAnswer: ContinuousClock.Instant?, since: ContinuousClock.Instant, up: Bool)] = [:]
        /// The alive members (self included) with their seeds, recomputed on every change.
        var alive: [(name: String, seed: UInt64)] = []
    }

    package init(selfName: String, peers: [String], failureTimeout: Duration, now: ContinuousClock.Instant = .now) {
        self.selfName = selfName
        self.failureTimeout = failureTimeout
        var members = Members()
        // A peer counts as up until it has failed to answer for `failureTimeout`: members that start
        // together route the same way from the first request.
        for peer in peers where peer != selfName { members.peers[peer] = (nil, now, true) }
        state = Mutex(members)
        state.withLock { Self.recompute(&$0, selfName: selfName) }
    }

    /// The owner of `traceID` among the alive members.
    package func owner(of traceID: TraceID) -> String {
        state.withLock { members in Self.owner(traceID, among: members.alive) }
    }

    /// Owners of many trace ids under one lock.
    package func owners<S: Sequence>(of traceIDs: S) -> [TraceID: String] where S.Element == TraceID {
        state.withLock { members in
            var result: [TraceID: String] = [:]
            for id in traceIDs where result[id] == nil { result[id] = Self.owner(id, among: members.alive) }
            return result
        }
    }

    package func isAlive(_ name: String) -> Bool {
        name == selfName || state.withLock { $0.peers[name]?.up == true }
    }

    /// Every member, this one first, then the peers by name.
    package var members: [Member] {
        state.withLock { members in
            [Member(name: selfName, state: .this)] + members.peers.keys.sorted().map {
                Member(name: $0, state: members.peers[$0]?.up == true ? .up : .down)
            }
        }
    }

    package var peerNames: [String] { state.withLock { $0.peers.keys.sorted() } }

    /// Replaces the peer list (after a DNS resolution): new peers start up, gone ones are dropped.
    /// Returns the peers that were added.
    @discardableResult
    package func setPeers(_ names: [String], now: ContinuousClock.Instant = .now) -> [String] {
        state.withLock { members in
            let wanted = Set(names).subtracting([selfName])
            let added = wanted.subtracting(members.peers.keys).sorted()
            for name in members.peers.keys where !wanted.contains(name) { members.peers[name] = nil }
            for name in added { members.peers[name] = (nil, now, true) }
            Self.recompute(&members, selfName: selfName)
            return added
        }
    }

    /// Records a health check's answer; returns the peer's state when it changed.
    @discardableResult
    package func report(_ name: String, answered: Bool, now: ContinuousClock.Instant = .now) -> State? {
        state.withLock { members in
            guard var peer = members.peers[name] else { return nil }
            if answered { peer.lastAnswer = now }
            let silentSince = peer.lastAnswer ?? peer.since
            let up = answered || now - silentSince < failureTimeout
            let changed = up != peer.up
            peer.up = up
            members.peers[name] = peer
            guard changed else { return nil }
            Self.recompute(&members, selfName: selfName)
            return up ? .up : .down
        }
    }

    private static func recompute(_ members: inout Members, selfName: String) {
        let names = [selfName] + members.peers.filter { $0.value.up }.keys.sorted()
        members.alive = names.map { ($0, seed(of: $0)) }
    }

    static func owner(_ traceID: TraceID, among alive: [(name: String, seed: UInt64)]) -> String {
        var best = alive[0]
        var bestScore = score(traceID, seed: best.seed)
        for member in alive.dropFirst() {
            let score = score(traceID, seed: member.seed)
            // Ties (astronomically rare) go to the smaller name, the same on every member.
            if score > bestScore || (score == bestScore && member.name < best.name) {
                best = member
                bestScore = score
            }
        }
        return best.name
    }

    /// FNV-1a of the member's name.
    static func seed(of name: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// The member's weight for the trace: the trace id mixed with the member's seed (SplitMix64's
    /// finalizer, twice), so that every member ranks trace ids in an unrelated order.
    static func score(_ traceID: TraceID, seed: UInt64) -> UInt64 {
        mix(mix(traceID.high ^ seed) ^ traceID.low)
    }

    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Peer entries whose host is a DNS name, resolved to every address (`host:port` each).
enum PeerResolution {
    /// Each entry as given when its host is an IP address literal; otherwise every address the name
    /// resolves to (IPv4 and IPv6), or nothing (with the reason) when it does not resolve.
    static func resolve(_ entries: [String]) -> (names: [String], failures: [String]) {
        var names: [String] = []
        var failures: [String] = []
        for entry in entries {
            guard let address = ListenAddress(entry) else {
                failures.append("'\(entry)' is not HOST:PORT")
                continue
            }
            if isAddressLiteral(address.host) {
                names.append(address.description)
                continue
            }
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(address.host, String(address.port), &hints, &result)
            guard status == 0, let first = result else {
                failures.append("\(address.host) does not resolve: \(String(cString: gai_strerror(status)))")
                continue
            }
            defer { freeaddrinfo(first) }
            var found: Set<String> = []
            var cursor: UnsafeMutablePointer<addrinfo>? = first
            while let info = cursor {
                var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                    let ip = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    found.insert(ListenAddress(host: ip, port: address.port).description)
                }
                cursor = info.pointee.ai_next
            }
            names += found.sorted()
        }
        return (names, failures)
    }

    static func isAddressLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
