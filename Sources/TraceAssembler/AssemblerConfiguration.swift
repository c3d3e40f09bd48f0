/// The completion rules' limits (DESIGN.md, "When is a trace finished?").
package struct AssemblerConfiguration: Sendable, Equatable {
    /// A closed trace is released after this long without new spans.
    package var idleTimeout: Duration
    /// Any trace is released this long after its first span, marked incomplete if not closed.
    package var maxTraceAge: Duration
    /// A trace with more buffered spans than this is released in parts (reason `too_large`).
    package var maxSpansPerTrace: Int
    /// At most this many traces are buffered; over it the oldest are released (reason `evicted`).
    package var maxTraces: Int
    /// At most this many request bytes are held by buffered spans (`AssemblerStats.bufferedBytes`); over
    /// it the oldest traces are released.
    package var maxBufferedBytes: Int
    /// Released trace ids are remembered this long, so that late spans are marked `late`.
    package var lateWindow: Duration

    package init(
        idleTimeout: Duration = .seconds(2),
        maxTraceAge: Duration = .seconds(30),
        maxSpansPerTrace: Int = 10_000,
        maxTraces: Int = 100_000,
        maxBufferedBytes: Int = 256 * 1024 * 1024,
        lateWindow: Duration = .seconds(600)
    ) {
        self.idleTimeout = idleTimeout
        self.maxTraceAge = maxTraceAge
        self.maxSpansPerTrace = maxSpansPerTrace
        self.maxTraces = maxTraces
        self.maxBufferedBytes = maxBufferedBytes
        self.lateWindow = lateWindow
    }
}

extension AssemblerConfiguration {
    /// At most this many released trace ids are remembered for late spans (4 × `maxTraces`); beyond it
    /// the oldest are forgotten early (counted), bounding memory when traces churn fast.
    package var rememberedTraceLimit: Int { 4 * max(1, maxTraces) }

    /// One invalid limit: the option (DESIGN.md spelling) and why.
    package struct Problem: Sendable, Equatable {
        package var key: String
        package var reason: String
    }

    /// Every problem with these limits; empty when valid.
    package var problems: [Problem] {
        var problems: [Problem] = []
        func check(_ valid: Bool, _ key: String, _ reason: String) {
            if !valid { problems.append(Problem(key: key, reason: reason)) }
        }
        check(idleTimeout > .zero, "idle_timeout", "must be positive, got \(idleTimeout)")
        check(maxTraceAge > .zero, "max_trace_age", "must be positive, got \(maxTraceAge)")
        check(idleTimeout <= maxTraceAge, "idle_timeout", "must not exceed max_trace_age (\(maxTraceAge)), got \(idleTimeout)")
        check(lateWindow >= .zero, "late_window", "must not be negative, got \(lateWindow)")
        check(maxSpansPerTrace >= 1, "max_spans_per_trace", "must be at least 1, got \(maxSpansPerTrace)")
        check(maxTraces >= 1, "max_traces", "must be at least 1, got \(maxTraces)")
        check(maxBufferedBytes >= 1, "max_buffered_bytes", "must be at least 1, got \(maxBufferedBytes)")
        return problems
    }
}
