import Synchronization

/// A test-controlled instant: an offset from an arbitrary zero, so that tests say "t = 2.5 s".
package struct TestInstant: InstantProtocol, CustomStringConvertible {
    package var offset: Duration

    package init(offset: Duration) { self.offset = offset }

    package static let zero = TestInstant(offset: .zero)

    package static func seconds(_ value: Double) -> TestInstant { TestInstant(offset: .milliseconds(Int64(value * 1000))) }

    package func advanced(by duration: Duration) -> TestInstant { TestInstant(offset: offset + duration) }

    package func duration(to other: TestInstant) -> Duration { other.offset - offset }

    package static func < (lhs: TestInstant, rhs: TestInstant) -> Bool { lhs.offset < rhs.offset }

    package var description: String { "t=\(offset)" }
}

/// A clock that moves only when the test says so (`advance(by:)`); sleepers wake when it passes
/// their deadline and throw `CancellationError` when their task is cancelled. Every sleep is
/// recorded with its length, and `nextSleep()` waits (without sleeping) until the code under test
/// starts one. Shared by the assembler and the exporter tests.
package final class ManualClock: Clock {
    package typealias Instant = TestInstant
    package typealias Duration = Swift.Duration

    package init() {}

    private struct Sleeper {
        var id: UInt64
        var deadline: TestInstant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = TestInstant.zero
        var sleepers: [Sleeper] = []
        var nextID: UInt64 = 0
        /// Lengths of sleeps not yet taken by `nextSleep()`.
        var unseenSleeps: [Duration] = []
        var allSleeps: [Duration] = []
        var sleepWaiters: [CheckedContinuation<Duration, Never>] = []
    }

    private let state = Mutex(State())

    package var now: TestInstant { state.withLock { $0.now } }
    package var minimumResolution: Duration { .zero }

    /// Every sleep requested so far, in order.
    package var sleeps: [Duration] { state.withLock { $0.allSleeps } }

    package func sleep(until deadline: TestInstant, tolerance: Duration?) async throws {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (immediate, waiter, length): (Result<Void, any Error>?, CheckedContinuation<Duration, Never>?, Duration) = state.withLock { state in
                    if Task.isCancelled { return (.failure(CancellationError()), nil, .zero) }
                    let length = state.now.duration(to: deadline)
                    state.allSleeps.append(length)
                    var waiter: CheckedContinuation<Duration, Never>?
                    if state.sleepWaiters.isEmpty {
                        state.unseenSleeps.append(length)
                    } else {
                        waiter = state.sleepWaiters.removeFirst()
                    }
                    if deadline <= state.now { return (.success(()), waiter, length) }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return (nil, waiter, length)
                }
                waiter?.resume(returning: length)
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let cancelled = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let index = state.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return state.sleepers.remove(at: index).continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    /// The length of the next sleep the code under test starts (or already started and no one saw).
    package func nextSleep() async -> Duration {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Duration? in
                if !state.unseenSleeps.isEmpty { return state.unseenSleeps.removeFirst() }
                state.sleepWaiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// How many tasks are sleeping on this clock.
    package var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Waits (yielding, never sleeping) until `count` tasks sleep on this clock.
    package func waitForSleepers(_ count: Int) async {
        while sleeperCount < count { await Task.yield() }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come.
    package func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume() }
    }
}
