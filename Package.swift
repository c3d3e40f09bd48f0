// swift-tools-version:6.3
import PackageDescription

// One module per pipeline stage; dependencies point one way:
// OTLPWire ← TraceEdge ← { TraceAssembler, TraceModel ← { SQLiteStore, PostgresStore }, Exporters }, Receiver ← GRPCReceiver ← StitchCore ← stitch
let package = Package(
    name: "stitch",
    // Linux only (Debian 12, Swift 6.3), as the README says; the glibc- and /proc-specific memory release
    // (malloc_trim, madvise of code pages) is behind #if os(Linux).
    products: [
        .executable(name: "stitch", targets: ["stitch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.42.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // zlib from the system (zlib1g-dev) for bounded, streaming inflate of request bodies.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // glibc's malloc_trim, to hand freed heap back to the system when the pipeline is idle.
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),

        // The one zlib binding: gzip / zlib / raw deflate, compress whole, inflate with a hard limit.
        .target(name: "Deflate", dependencies: ["CZlib"]),

        // Zero-copy protobuf reader/writer, OTLP/JSON, span records. No I/O.
        .target(name: "OTLPWire"),

        // Generated swift-protobuf types (committed; see proto/regen.sh). Test oracle and reference path.
        .target(
            name: "OTLPModel",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),

        // The edge between the assembler and its sinks: FinishedTrace, ReleaseReason, TraceSink.
        .target(name: "TraceEdge", dependencies: ["OTLPWire"]),

        // The completion state machine and its actor.
        .target(
            name: "TraceAssembler",
            dependencies: [
                "OTLPWire", "TraceEdge",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // MLflow's trace model: the rows of a trace (info, tags, metadata, span JSON, derived fields),
        // MLflow's JSON, the filter language. No database: the backends below write and read it.
        .target(
            name: "TraceModel",
            dependencies: [
                "OTLPWire", "TraceEdge",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // The embedded store: the trace model in SQLite (through GRDB), WAL with checkpoints beside the writer.
        .target(
            name: "SQLiteStore",
            dependencies: [
                "OTLPWire",
                "TraceEdge",
                "TraceModel",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // The same store on PostgreSQL (postgres-nio): several Stitch instances write one database.
        .target(
            name: "PostgresStore",
            dependencies: [
                "OTLPWire",
                "TraceEdge",
                "TraceModel",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // gRPC messages as raw bytes (one serializer for the receiver, the exporter and the load
        // generator) and the status codes' names.
        .target(name: "GRPCBytes", dependencies: [.product(name: "GRPCCore", package: "grpc-swift-2")]),

        // Destinations beyond the embedded store: OTLP/HTTP exporter, MLflow tracking server exporter,
        // per-destination persistent queue, retry policy, dead letters.
        .target(
            name: "Exporters",
            dependencies: [
                "OTLPWire", "TraceEdge", "Deflate", "CZlib", "GRPCBytes",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // OTLP/HTTP server on SwiftNIO: decoding, limits, backpressure answers.
        .target(
            name: "Receiver",
            dependencies: [
                "OTLPWire",
                "Deflate",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // OTLP/gRPC server (grpc-swift 2 over its NIO HTTP/2 transport): the message bytes go to the same
        // decode/answer path as OTLP/HTTP (Receiver's OTLPExportEndpoint); no generated code.
        .target(
            name: "GRPCReceiver",
            dependencies: [
                "OTLPWire",
                "Deflate",
                "GRPCBytes",
                "Receiver",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),

        // Configuration, pipeline wiring, metrics, lifecycle, query API.
        .target(
            name: "StitchCore",
            dependencies: [
                "OTLPWire", "TraceEdge", "TraceAssembler", "TraceModel", "SQLiteStore", "PostgresStore", "Receiver", "GRPCReceiver", "Exporters", "CMalloc",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),

        // The executable: argument parsing only.
        .executableTarget(
            name: "stitch",
            dependencies: [
                "StitchCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // Linked by lld with packed relative relocations (DT_RELR): the 1.3 MB relocation table
            // shrinks to 0.3 MB, and the loader touches ~1 MB less of the binary at start-up.
            linkerSettings: [
                .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(platforms: [.linux])),
            ]
        ),

        // Benchmarks: the load generator (stitch-load) and the decode micro-benchmark (stitch-bench-decode).
        .target(name: "StitchLoadKit", dependencies: ["OTLPWire", "Deflate", "StitchTestSupport"], path: "Benchmarks/StitchLoadKit"),
        .executableTarget(
            name: "stitch-load",
            dependencies: [
                "StitchLoadKit", "StitchTestSupport", "OTLPWire", "Exporters", "GRPCBytes", "Deflate",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            path: "Benchmarks/StitchLoad"
        ),
        .executableTarget(
            name: "stitch-bench-decode",
            dependencies: [
                "StitchLoadKit", "OTLPWire", "OTLPModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/DecodeBench"
        ),
        .executableTarget(
            name: "stitch-bench-store",
            dependencies: [
                "StitchLoadKit", "OTLPWire", "TraceEdge", "TraceAssembler", "TraceModel", "SQLiteStore", "PostgresStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/StoreBench"
        ),

        // Fixture loading, a raw HTTP client, a recording ingest and compression helpers shared by the test targets.
        .target(name: "StitchTestSupport", dependencies: [
            "OTLPWire", "Receiver",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
        ], path: "Tests/StitchTestSupport"),

        .testTarget(name: "DeflateTests", dependencies: ["Deflate"]),
        .testTarget(name: "OTLPWireTests", dependencies: ["OTLPWire", "OTLPModel", "Deflate", "StitchTestSupport"]),
        .testTarget(name: "TraceAssemblerTests", dependencies: ["TraceAssembler", "TraceEdge", "OTLPWire", "StitchTestSupport"]),
        .testTarget(name: "TraceStoreTests", dependencies: ["TraceModel", "SQLiteStore", "PostgresStore", "TraceEdge", "TraceAssembler", "OTLPWire", "StitchTestSupport"]),
        .testTarget(name: "ExportersTests", dependencies: [
            "Exporters", "GRPCBytes", "OTLPWire", "TraceEdge", "StitchTestSupport", "Receiver",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        .testTarget(name: "ReceiverTests", dependencies: [
            "Receiver", "OTLPWire", "Deflate", "StitchTestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "GRPCReceiverTests", dependencies: [
            "GRPCReceiver", "Receiver", "OTLPWire", "Deflate", "StitchTestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            .product(name: "NIOHPACK", package: "swift-nio-http2"),
        ]),
        .testTarget(name: "StitchCoreTests", dependencies: [
            "StitchCore", "Exporters", "GRPCBytes", "TraceModel", "SQLiteStore", "PostgresStore", "TraceEdge", "TraceAssembler", "OTLPWire", "StitchTestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)

// Partial builds while developing one stage: STITCH_ONLY=OTLPWire,OTLPWireTests swift test
// keeps only the named targets (plus the targets they depend on must be listed too).
import Foundation
if let only = ProcessInfo.processInfo.environment["STITCH_ONLY"], !only.isEmpty {
    let keep = Set(only.split(separator: ",").map(String.init))
    package.targets = package.targets.filter { keep.contains($0.name) }
    package.products = package.products.filter { $0.name != "stitch" || keep.contains("stitch") }
}
