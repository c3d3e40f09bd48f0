/// Exponential back-off with jitter for transient delivery failures.
///
/// The OTLP specification ("OTLP/HTTP Throttling", "Retryable Response Codes") requires transient
/// errors to be retried with exponential back-off and jitter, and a server's `Retry-After` to be
/// honoured. The n-th retry waits `initialInterval × multiplier^(n-1)`, capped at `maxInterval`, then
/// scaled by a random factor in `[1 − randomizationFactor, 1 + randomizationFactor]` so that many
/// senders that failed together do not come back together.
///
/// Defaults: 1 s, 30 s, ×1.5, ±50 %. The multiplier, cap and randomization are the OpenTelemetry
/// Collector's `exporterhelper` defaults; the first interval is shorter than its 5 s because a
/// destination here is fed from a persistent queue and there is nothing to gain from waiting long
/// after a single dropped connection. There is deliberately no "max elapsed time": data is kept
/// (queued on disk) and retried for as long as the failure is transient.
package struct RetryPolicy: Sendable, Equatable {
    /// Wait before the first retry (before jitter). Default 1 s.
    package var initialInterval: Duration
    /// Cap on the interval before jitter. Default 30 s.
    package var maxInterval: Duration
    /// Growth per retry. Default 1.5.
    package var multiplier: Double
    /// Jitter: the interval is scaled by a uniform factor in `[1 − r, 1 + r]`. Default 0.5; 0 disables it.
    package var randomizationFactor: Double
    /// The longest a server's `Retry-After` is obeyed. Default 5 min: a misconfigured server
    /// answering "come back tomorrow" must not park a destination for a day.
    package var maxRetryAfter: Duration

    package init(
        initialInterval: Duration = .seconds(1), maxInterval: Duration = .seconds(30),
        multiplier: Double = 1.5, randomizationFactor: Double = 0.5, maxRetryAfter: Duration = .seconds(300)
    ) {
        self.initialInterval = initialInterval
        self.maxInterval = maxInterval
        self.multiplier = multiplier
        self.randomizationFactor = randomizationFactor
        self.maxRetryAfter = maxRetryAfter
    }

    /// Every problem with the values, as `field: what is wrong` lines (empty when valid).
    package func problems() -> [String] {
        var problems: [String] = []
        if initialInterval <= .zero { problems.append("initial_interval: must be positive") }
        if maxInterval < initialInterval { problems.append("max_interval: must be at least initial_interval") }
        if !(multiplier >= 1 && multiplier.isFinite) { problems.append("multiplier: must be a finite number ≥ 1") }
        if !(0...1).contains(randomizationFactor) { problems.append("randomization_factor: must be between 0 and 1") }
        if maxRetryAfter < .zero { problems.append("max_retry_after: must not be negative") }
        return problems
    }

    /// The interval before jitter for retry number `attempt` (1 = the first retry).
    package func baseInterval(attempt: Int) -> Duration {
        let maxSeconds = DurationSeconds.of(maxInterval)
        var seconds = DurationSeconds.of(initialInterval)
        // Multiply step by step and stop at the cap: no pow() overflow for very large attempts.
        var step = 1
        while step < attempt && seconds < maxSeconds {
            seconds *= multiplier
            step += 1
        }
        return DurationSeconds.duration(min(seconds, maxSeconds))
    }

    /// How long to wait before retry number `attempt` (1 = the first retry).
    ///
    /// With a server-given `retryAfter`, waits that long (at most `maxRetryAfter`), but never less
    /// than the jittered back-off: a `Retry-After: 0` must not turn into a busy loop.
    package func delay(attempt: Int, retryAfter: Duration?) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, retryAfter: retryAfter, using: &generator)
    }

    /// `delay(attempt:retryAfter:)` with the jitter drawn from `generator` (for tests).
    package func delay(attempt: Int, retryAfter: Duration?, using generator: inout some RandomNumberGenerator) -> Duration {
        let base = DurationSeconds.of(baseInterval(attempt: max(attempt, 1)))
        let factor = randomizationFactor > 0
            ? Double.random(in: (1 - randomizationFactor)...(1 + randomizationFactor), using: &generator)
            : 1
        let backOff = DurationSeconds.duration(base * factor)
        guard let retryAfter else { return backOff }
        return max(backOff, min(max(retryAfter, .zero), maxRetryAfter))
    }
}

/// `Duration` ⇄ seconds as `Double`, for the back-off arithmetic.
enum DurationSeconds {
    static func of(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }

    /// Rounded to whole milliseconds; negative and non-finite values become zero.
    static func duration(_ seconds: Double) -> Duration {
        guard seconds.isFinite, seconds > 0 else { return .zero }
        // Clamp far beyond any sensible delay so the conversion cannot trap.
        return .milliseconds(Int64(min(seconds, 1e12) * 1000))
    }
}
