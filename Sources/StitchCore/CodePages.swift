#if canImport(Glibc)
import Glibc
#endif

/// Gives back code pages that serving does not keep using.
///
/// Starting a Swift server maps much more of its code than serving uses: the dynamic loader, the
/// runtime's and Foundation's initializers, argument and configuration parsing, the schema
/// migration — and the kernel's fault-around maps up to 64 KiB of neighbours with every page it
/// faults in. Those pages stay in the resident set of an idle process for its whole life (measured:
/// ~30 MiB of file pages mapped after start-up, ~18 MiB after serving traffic). A burst of traffic
/// maps in again what it ran (~18 MiB after an end-to-end run), and those stay too.
///
/// Once the server is ready, and again when it falls idle after traffic (`IdleMemoryService`), each
/// read-only private mapping of the executable or of a shared library (code, read-only data) is
/// unmapped from this process with `MADV_DONTNEED`: the pages stay in the page cache, and whatever
/// runs next maps what it touches again with a minor fault. Mappings holding any page of their own
/// (relocated read-only data, copied on write before it was made read-only) are left alone:
/// dropping those would read the unrelocated bytes back from the file. Only code objects qualify
/// because they stay mapped for the life of the process: a mapped data file could be unmapped, and
/// its addresses reused for heap, between the listing and the advice.
package enum CodePages {
    /// Unmaps the clean pages of read-only private file mappings; returns the bytes advised.
    /// Linux only; elsewhere, or when `/proc/self/smaps` cannot be read, does nothing.
    @discardableResult
    package static func release() -> Int {
        #if os(Linux)
        guard let smaps = readFile("/proc/self/smaps") else { return 0 }
        var released = 0
        for mapping in cleanReadOnlyFileMappings(smaps: smaps, executable: executablePath()) {
            guard let start = UnsafeMutableRawPointer(bitPattern: mapping.start) else { continue }
            let length = Int(mapping.end - mapping.start)
            if madvise(start, length, MADV_DONTNEED) == 0 { released += length }
        }
        return released
        #else
        return 0
        #endif
    }

    struct Mapping: Equatable {
        let start: UInt
        let end: UInt
    }

    /// The mappings of an smaps listing that are private, not writable, backed by `executable` or a
    /// shared object (`….so`, `….so.N…`), and hold no anonymous (copied-on-write) page.
    static func cleanReadOnlyFileMappings(smaps: String, executable: String?) -> [Mapping] {
        var result: [Mapping] = []
        var candidate: Mapping?
        for line in smaps.split(separator: "\n", omittingEmptySubsequences: true) {
            if let first = line.split(separator: " ", maxSplits: 1).first, !first.hasSuffix(":") {
                // A mapping's first line: the next `Anonymous:` line belongs to it.
                candidate = header(line, executable: executable)
                continue
            }
            guard let current = candidate, line.hasPrefix("Anonymous:") else { continue }
            let kib = line.dropFirst("Anonymous:".count).split(separator: " ").first.flatMap { Int($0) }
            if kib == 0 { result.append(current) }
            candidate = nil
        }
        return result
    }

    /// A mapping header (`start-end perms offset dev inode path`) that qualifies, nil otherwise.
    private static func header(_ line: Substring, executable: String?) -> Mapping? {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count == 6, let dash = fields[0].firstIndex(of: "-"),
              let start = UInt(fields[0][..<dash], radix: 16),
              let end = UInt(fields[0][fields[0].index(after: dash)...], radix: 16), end > start
        else { return nil }
        let permissions = Array(fields[1].utf8)
        let path = fields[5].drop(while: { $0 == " " })
        guard permissions.count == 4, permissions[0] == UInt8(ascii: "r"), permissions[1] == UInt8(ascii: "-"),
              permissions[3] == UInt8(ascii: "p"), path.hasPrefix("/"), !path.hasSuffix("(deleted)"),
              executable.map({ path == $0 }) == true || isSharedObject(path)
        else { return nil }
        return Mapping(start: start, end: end)
    }

    /// `/usr/lib/libc.so.6`, `/opt/swift/usr/lib/swift/linux/libswiftCore.so`: a name ending in `.so`
    /// or with `.so.` followed by a version.
    static func isSharedObject(_ path: Substring) -> Bool {
        let name = path.split(separator: "/").last ?? path
        return name.hasSuffix(".so") || name.contains(".so.")
    }

    private static func executablePath() -> String? {
        #if canImport(Glibc)
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #else
        return nil
        #endif
    }

    private static func readFile(_ path: String) -> String? {
        #if canImport(Glibc)
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var block = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = block.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: block[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
        #else
        return nil
        #endif
    }
}
