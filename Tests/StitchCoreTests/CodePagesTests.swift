import Foundation
@testable import StitchCore
import Testing

@Suite struct CodePagesTests {
    @Test func picksCleanReadOnlyPrivateFileMappingsOnly() {
        let smaps = """
            55d0c0000000-55d0c0100000 r--p 00000000 fd:01 100 /usr/bin/stitch
            Size:               1024 kB
            Rss:                 512 kB
            Anonymous:             0 kB
            VmFlags: rd mr mw me dw sd
            55d0c0100000-55d0c0400000 r-xp 00100000 fd:01 100 /usr/bin/stitch
            Rss:                2048 kB
            Anonymous:             0 kB
            55d0c0400000-55d0c0420000 r--p 00400000 fd:01 100 /usr/bin/stitch
            Rss:                 128 kB
            Anonymous:           128 kB
            55d0c0420000-55d0c0430000 rw-p 00420000 fd:01 100 /usr/bin/stitch
            Anonymous:            64 kB
            55d0c0430000-55d0c0440000 rw-p 00000000 00:00 0
            Anonymous:            64 kB
            7f0000000000-7f0000010000 r--s 00000000 fd:01 200 /tmp/store.db-shm
            Anonymous:             0 kB
            7f0000010000-7f0000020000 r-xp 00000000 fd:01 300 /tmp/lib with space.so
            Anonymous:             0 kB
            7f0000020000-7f0000030000 r-xp 00000000 fd:01 301 /tmp/gone.so (deleted)
            Anonymous:             0 kB
            7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                  [vdso]
            Anonymous:             0 kB
            7f0000030000-7f0000040000 r--p 00000000 fd:01 302 /tmp/config.yaml
            Anonymous:             0 kB
            7f0000040000-7f0000050000 r--p 00000000 fd:01 303 /usr/lib/x86_64-linux-gnu/libc.so.6
            Anonymous:             0 kB
            7f0000050000-7f0000060000 r--p 00000000 fd:01 304 /tmp/notes.sonnet
            Anonymous:             0 kB
            """
        #expect(CodePages.cleanReadOnlyFileMappings(smaps: smaps, executable: "/usr/bin/stitch") == [
            .init(start: 0x55d0_c000_0000, end: 0x55d0_c010_0000),
            .init(start: 0x55d0_c010_0000, end: 0x55d0_c040_0000),
            .init(start: 0x7f00_0001_0000, end: 0x7f00_0002_0000),
            .init(start: 0x7f00_0004_0000, end: 0x7f00_0005_0000),
        ])
    }

    #if os(Linux)
    @Test func releasingShrinksTheResidentFilePagesAndTheProcessKeepsWorking() throws {
        let before = try Self.residentFileKiB()
        let released = CodePages.release()
        let after = try Self.residentFileKiB()
        #expect(released > 0)
        #expect(after < before, "RssFile \(before) kB → \(after) kB")
        // Code and read-only data come back on use: encode, decode and format through Foundation.
        let encoded = try JSONEncoder().encode(["trace": [1, 2, 3]])
        let decoded = try JSONDecoder().decode([String: [Int]].self, from: encoded)
        #expect(decoded["trace"] == [1, 2, 3])
        #expect(String(format: "%05.1f", 3.14159) == "003.1")
    }

    static func residentFileKiB() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("RssFile:") })
        return try #require(Int(line.split(separator: " ")[1]))
    }
    #endif
}
