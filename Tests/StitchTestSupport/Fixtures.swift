import Foundation

/// The captured OTLP requests in `../shared/fixtures/mlflow-otlp` (beside the repository), or in
/// `$STITCH_FIXTURES`.
public enum Fixtures {
    public static var directory: URL {
        if let override = ProcessInfo.processInfo.environment["STITCH_FIXTURES"] {
            return URL(fileURLWithPath: override)
        }
        // Tests/StitchTestSupport/Fixtures.swift → package root → ../shared/fixtures/mlflow-otlp
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures/mlflow-otlp")
    }

    /// The raw bytes of a fixture file, by name prefix (`"01"` or the full file name).
    public static func bytes(_ name: String) throws -> [UInt8] {
        let url = try self.url(name)
        return Array(try Data(contentsOf: url))
    }

    public static func url(_ name: String) throws -> URL {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        if files.contains(name) { return directory.appendingPathComponent(name) }
        guard let match = files.first(where: { $0.hasPrefix(name + "-") && ($0.hasSuffix(".pb") || $0.hasSuffix(".pb.gz")) }) else {
            throw FixtureError(message: "no fixture \(name) in \(directory.path)")
        }
        return directory.appendingPathComponent(match)
    }

    public struct FixtureError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }
}
