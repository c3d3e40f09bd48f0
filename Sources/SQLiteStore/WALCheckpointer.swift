import TraceModel
import Dispatch
import GRDBSQLite
import Synchronization

/// Copies committed WAL pages into the database file on a thread of its own, so that the writer
/// does not (checkpointing was ~20 % of the writer's time per span).
///
/// After each commit the store calls `committed()`; one passive checkpoint runs at a time on a
/// separate connection (a passive checkpoint never blocks the writer or readers). SQLite starts the
/// WAL from the beginning only once every frame is copied, which a checkpointer running beside a
/// busy writer never sees; so when the WAL passes a bound, the writer waits for this one, copies
/// the last frames itself, and its next transaction restarts the WAL. The writer knows the WAL's
/// size from `WALFrames`, which SQLite tells after each commit.
final class WALCheckpointer: Sendable {
    private let queue = DispatchQueue(label: "stitch.store.checkpoint")
    private let connection: Mutex<OpaquePointer?>
    /// A checkpoint is running, and whether another commit arrived meanwhile.
    private let state = Mutex<(running: Bool, again: Bool)>((false, false))

    /// Opens the checkpoint connection; nil when it cannot (the writer then checkpoints itself).
    init?(path: String) {
        var handle: OpaquePointer?
        // A new connection learns that the file is in WAL mode only when it first reads it.
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK,
              Self.journalMode(handle) == "wal" else {
            sqlite3_close(handle)
            return nil
        }
        connection = Mutex(handle)
    }

    deinit {
        // No checkpoint runs now: a queued one holds a reference to this object.
        connection.withLock { handle in
            sqlite3_close(handle)
            handle = nil
        }
    }

    private static func journalMode(_ handle: OpaquePointer?) -> String? {
        var statement: OpaquePointer?
        defer { sqlite3_finalize(statement) }
        guard sqlite3_prepare_v2(handle, "PRAGMA journal_mode", -1, &statement, nil) == SQLITE_OK,
              sqlite3_step(statement) == SQLITE_ROW, let text = sqlite3_column_text(statement, 0) else { return nil }
        return String(cString: text)
    }

    /// A write transaction committed: start a checkpoint unless one is running (then run one more
    /// after it, for the frames it did not see).
    func committed() {
        let start = state.withLock { state -> Bool in
            if state.running {
                state.again = true
                return false
            }
            state.running = true
            return true
        }
        if start { queue.async { self.run() } }
    }

    /// Blocks until no checkpoint runs (called by the writer, so no commit starts another).
    func waitIdle() {
        queue.sync {}
    }

    private func run() {
        while true {
            connection.withLock { handle in
                guard let handle else { return }
                // "Busy" (another checkpoint is running) is not an error for a passive checkpoint.
                _ = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            }
            let again = state.withLock { state -> Bool in
                if state.again {
                    state.again = false
                    return true
                }
                state.running = false
                return false
            }
            if !again { return }
        }
    }
}

/// The number of frames in the writer's WAL, as SQLite reports it after each commit (its WAL hook,
/// which replaces SQLite's automatic checkpoint: the store decides when to checkpoint).
final class WALFrames: Sendable {
    private let frames = Atomic<Int>(0)

    var count: Int { frames.load(ordering: .relaxed) }

    /// Installs the hook on the writer's connection; this object must outlive the connection.
    func install(on connection: OpaquePointer) {
        sqlite3_wal_hook(connection, { context, _, _, frames in
            guard let context else { return SQLITE_OK }
            Unmanaged<WALFrames>.fromOpaque(context).takeUnretainedValue().frames.store(Int(frames), ordering: .relaxed)
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }
}
