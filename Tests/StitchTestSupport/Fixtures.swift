import Foundation

/// The captured MLflow / OpenTelemetry requests kept in the repository, `Tests/Fixtures/mlflow-otlp`
/// (their README says what each file is; `SHA256SUMS` covers the binary ones).
///
/// The folder is part of the checkout, so a missing or emptied one is a broken checkout, not a reason to
/// skip: the first use stops the test process with a message naming the folder, instead of letting
/// parameterized tests run over zero fixtures and report "no test cases".
package enum Fixtures {
    /// `Tests/Fixtures/mlflow-otlp`, found from this source file's path; checked once.
    package static let directory: URL = {
        // Tests/StitchTestSupport/Fixtures.swift → Tests/
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let directory = tests.appendingPathComponent("Fixtures/mlflow-otlp")
        if let problem = problem(in: directory) { fatalError(problem) }
        return directory
    }()

    /// Why `directory` cannot serve as the fixture folder, or nil when it can: it must hold every file
    /// `SHA256SUMS` names and at least one captured body.
    package static func problem(in directory: URL) -> String? {
        let sums = directory.appendingPathComponent("SHA256SUMS")
        guard let listing = try? String(contentsOf: sums, encoding: .utf8) else {
            return "the captured fixtures are missing: no \(sums.path) (a broken checkout? run `git status`)"
        }
        let listed = listing.split(separator: "\n").compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).last }
        let missing = listed.map(String.init).filter {
            !FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path)
        }
        if !missing.isEmpty { return "fixtures listed in \(sums.path) are missing: \(missing.joined(separator: ", "))" }
        if bodyNames(in: directory).isEmpty { return "no captured bodies (*.pb, *.pb.gz) in \(directory.path)" }
        return nil
    }

    /// Every captured protobuf body (`*.pb`, `*.pb.gz`) in the fixture folder, by file name, sorted.
    package static var bodyNames: [String] { bodyNames(in: directory) }

    static func bodyNames(in directory: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".pb") || $0.hasSuffix(".pb.gz") }.sorted()
    }

    /// The raw bytes of a fixture file, by name prefix (`"01"`) or its full file name.
    package static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: try url(name)))
    }

    package static func url(_ name: String) throws -> URL {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        if files.contains(name) { return directory.appendingPathComponent(name) }
        guard let match = files.first(where: { $0.hasPrefix(name + "-") && ($0.hasSuffix(".pb") || $0.hasSuffix(".pb.gz")) }) else {
            throw FixtureError(message: "no fixture \(name) in \(directory.path)")
        }
        return directory.appendingPathComponent(match)
    }

    package struct FixtureError: Error, CustomStringConvertible {
        package var message: String
        package init(message: String) { self.message = message }
        package var description: String { message }
    }
}
