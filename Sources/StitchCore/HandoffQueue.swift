import DequeModule
import Synchronization
import TraceAssembler
import TraceEdge

/// Finished traces on their way to one destination: bounded in bytes, never blocking the producer.
///
/// The assembler hands releases over synchronously (it must not wait on a disk); the bound is enforced
/// upstream: while `isFull`, the receiver refuses new requests (429/503 + Retry-After), so the queue
/// overshoots its limit by at most what the assembler already buffered.
package final class HandoffQueue: Sendable {
    private struct State {
        var traces = Deque<FinishedTrace>()
        var bytes = 0
        /// Traces ever enqueued: tells whether anything arrived between two looks.
        var enqueued = 0
        var finished = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    package let maxBytes: Int
    private let state = Mutex(State())

    package init(maxBytes: Int) {
        self.maxBytes = maxBytes
    }

    package func enqueue(_ traces: [FinishedTrace]) {
        guard !traces.isEmpty else { return }
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            for trace in traces {
                state.traces.append(trace)
                state.bytes += trace.encodedBytes
            }
            state.enqueued += traces.count
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    package var isFull: Bool { state.withLock { $0.bytes >= maxBytes } }

    package var occupancy: (traces: Int, bytes: Int) { state.withLock { ($0.traces.count, $0.bytes) } }

    /// Traces enqueued so far, and whether every one of them has been written (none queued or in flight).
    package var activity: (enqueued: Int, drained: Bool) {
        state.withLock { ($0.enqueued, $0.traces.isEmpty && $0.bytes == 0) }
    }

    /// No more input will come; `next` returns nil once the queue is empty.
    package func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits for traces and takes up to `maxTraces` of them, stopping before `maxSpans` would be
    /// passed (always at least one trace); nil when finished and drained. One consumer at a time.
    package func next(maxTraces: Int, maxSpans: Int = .max) async -> [FinishedTrace]? {
        while true {
            enum Step { case batch([FinishedTrace]), done, wait }
            let step = state.withLock { state -> Step in
                if !state.traces.isEmpty {
                    var count = 0
                    var spans = 0
                    for trace in state.traces.prefix(maxTraces) {
                        if count > 0, spans + trace.spans.count > maxSpans { break }
                        count += 1
                        spans += trace.spans.count
                    }
                    let batch = Array(state.traces.prefix(count))
                    state.traces.removeFirst(count)
                    return .batch(batch)
                }
                return state.finished ? .done : .wait
            }
            switch step {
            case .batch(let batch):
                return batch
            case .done:
                return nil
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if !state.traces.isEmpty || state.finished { return true }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }

    /// Marks a taken batch as written: its bytes no longer count against the limit.
    package func completed(_ batch: [FinishedTrace]) {
        let bytes = batch.reduce(0) { $0 + $1.encodedBytes }
        state.withLock { $0.bytes -= bytes }
    }
}
