import Foundation
import StitchTestSupport
import Testing

/// The fixture folder is part of the repository; a checkout without it must fail, never skip.
@Suite struct FixtureFolderTests {
    @Test func theRepositoryHoldsEveryCapturedFixture() throws {
        #expect(StitchTestSupport.Fixtures.problem(in: StitchTestSupport.Fixtures.directory) == nil)
        #expect(StitchTestSupport.Fixtures.bodyNames.count >= 11)
        #expect(StitchTestSupport.Fixtures.directory.path.hasSuffix("Tests/Fixtures/mlflow-otlp"))
    }

    @Test func aMissingEmptyOrPartialFolderIsAProblem() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("stitch-fixtures-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let missing = try #require(StitchTestSupport.Fixtures.problem(in: scratch))
        #expect(missing.contains("missing"))

        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        #expect(StitchTestSupport.Fixtures.problem(in: scratch) != nil)

        // A copy of the real folder passes; with one listed body removed it does not, and says which.
        let copy = scratch.appendingPathComponent("copy")
        try FileManager.default.copyItem(at: StitchTestSupport.Fixtures.directory, to: copy)
        #expect(StitchTestSupport.Fixtures.problem(in: copy) == nil)
        try FileManager.default.removeItem(at: copy.appendingPathComponent("01-otelsdk-serviceA-3spans.pb"))
        let partial = try #require(StitchTestSupport.Fixtures.problem(in: copy))
        #expect(partial.contains("01-otelsdk-serviceA-3spans.pb"))
    }
}
