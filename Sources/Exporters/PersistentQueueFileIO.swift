import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file, used through POSIX calls so that the queue controls every write offset, fsync and
/// truncation. Errors name the file and the system's reason.
struct DurableFile: Sendable {
    let path: String
    private let descriptor: Int32

    /// Opens `path` for reading, or for reading and writing (created if missing) when `writable`.
    static func open(_ path: String, writable: Bool) throws(QueueError) -> DurableFile {
        let flags = writable ? (O_RDWR | O_CREAT | O_CLOEXEC) : (O_RDONLY | O_CLOEXEC)
        let descriptor = posixOpen(path, flags, 0o644)
        guard descriptor >= 0 else { throw FileSystem.error("cannot open", path) }
        return DurableFile(path: path, descriptor: descriptor)
    }

    /// Opens `path` for reading; nil when there is no such file.
    static func openIfPresent(_ path: String) throws(QueueError) -> DurableFile? {
        let descriptor = posixOpen(path, O_RDONLY | O_CLOEXEC, 0)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw FileSystem.error("cannot open", path)
        }
        return DurableFile(path: path, descriptor: descriptor)
    }

    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: [UInt8], at offset: Int) throws(QueueError) {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { buffer in
                pwrite(descriptor, buffer.baseAddress! + written, buffer.count - written, off_t(offset + written))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw FileSystem.error("cannot write", path)
            }
            written += result
        }
    }

    /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
    func read(count: Int, at offset: Int) throws(QueueError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var total = 0
        while total < count {
            let result = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + total, count - total, off_t(offset + total))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw FileSystem.error("cannot read", path)
            }
            if result == 0 { break }
            total += result
        }
        bytes.removeLast(count - total)
        return bytes
    }

    func size() throws(QueueError) -> Int {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw FileSystem.error("cannot stat", path) }
        return Int(info.st_size)
    }

    func readAll() throws(QueueError) -> [UInt8] {
        try read(count: size(), at: 0)
    }

    func sync() throws(QueueError) {
        guard fsync(descriptor) == 0 else { throw FileSystem.error("cannot fsync", path) }
    }

    func truncate(to size: Int) throws(QueueError) {
        guard ftruncate(descriptor, off_t(size)) == 0 else { throw FileSystem.error("cannot truncate", path) }
    }

    func close() {
        _ = posixClose(descriptor)
    }
}

/// Directory-level operations of the queue and the dead-letter store.
enum FileSystem {
    static func error(_ action: String, _ path: String) -> QueueError {
        let code = errno
        return QueueError("\(action) \(path): \(String(cString: strerror(code))) (errno \(code))")
    }

    /// `value` as 20 decimal digits, so that names sort as the numbers do.
    static func sortableName(_ value: UInt64) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    static func makeDirectory(_ path: String) throws(QueueError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw QueueError("cannot create directory \(path): \(error.localizedDescription)")
        }
    }

    /// The names of the entries of `directory`.
    static func list(_ directory: String) throws(QueueError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw QueueError("cannot list directory \(directory): \(error.localizedDescription)")
        }
    }

    /// Removes a file; a file that is already gone is not an error.
    static func remove(_ path: String) throws(QueueError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw error("cannot remove", path) }
    }

    static func rename(_ path: String, to newPath: String) throws(QueueError) {
        guard posixRename(path, newPath) == 0 else { throw error("cannot rename \(path) to", newPath) }
    }

    /// Makes renames and new or removed entries in `directory` durable.
    static func syncDirectory(_ directory: String) throws(QueueError) {
        let descriptor = posixOpen(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
        guard descriptor >= 0 else { throw error("cannot open directory", directory) }
        defer { _ = posixClose(descriptor) }
        guard fsync(descriptor) == 0 else { throw error("cannot fsync directory", directory) }
    }

    /// Creates or overwrites `path` with `bytes`; with `sync`, forced to disk before returning.
    static func write(_ path: String, _ bytes: [UInt8], sync: Bool) throws(QueueError) {
        let file = try DurableFile.open(path, writable: true)
        defer { file.close() }
        try file.truncate(to: 0)
        try file.write(bytes, at: 0)
        if sync { try file.sync() }
    }

    /// Replaces `path` with `bytes` so that a reader sees either the old or the new contents, never a
    /// mix: written to `<path>.tmp`, then renamed over it. With `sync`, the data and the rename are
    /// forced to disk before returning.
    static func replace(_ path: String, with bytes: [UInt8], sync: Bool) throws(QueueError) {
        let temporary = path + ".tmp"
        try write(temporary, bytes, sync: sync)
        try rename(temporary, to: path)
        if sync { try syncDirectory((path as NSString).deletingLastPathComponent) }
    }

    /// The contents of `path`, or nil when there is no such file.
    static func contents(of path: String) throws(QueueError) -> [UInt8]? {
        guard let file = try DurableFile.openIfPresent(path) else { return nil }
        defer { file.close() }
        return try file.readAll()
    }
}

private func posixRename(_ old: String, _ new: String) -> Int32 {
    rename(old, new)
}

// `open`, `close` and `rename` are shadowed by members above; these name the C functions.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 {
    open(path, flags, mode)
}

private func posixClose(_ descriptor: Int32) -> Int32 {
    close(descriptor)
}
