import Metrics
import Synchronization

/// A `MetricsFactory` that keeps the latest value of every counter and gauge, keyed
/// `label{name=value,…}`, so tests can read what the assembler reported.
final class RecordingMetrics: MetricsFactory {
    let values = Mutex<[String: Int64]>([:])

    subscript(key: String) -> Int64? { values.withLock { $0[key] } }

    private func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.isEmpty ? label : label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(key: key(label, dimensions), metrics: self, accumulates: true)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(key: key(label, dimensions), metrics: self, accumulates: false)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(key: key(label, dimensions), metrics: self, accumulates: false)
    }

    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    private final class Handler: CounterHandler, RecorderHandler, TimerHandler {
        let key: String
        let metrics: RecordingMetrics
        let accumulates: Bool

        init(key: String, metrics: RecordingMetrics, accumulates: Bool) {
            self.key = key
            self.metrics = metrics
            self.accumulates = accumulates
        }

        private func set(_ value: Int64) {
            metrics.values.withLock { values in
                values[key] = accumulates ? values[key, default: 0] + value : value
            }
        }

        func increment(by amount: Int64) { set(amount) }
        func reset() { metrics.values.withLock { $0[key] = 0 } }
        func record(_ value: Int64) { set(value) }
        func record(_ value: Double) { set(Int64(value)) }
        func recordNanoseconds(_ duration: Int64) { set(duration) }
    }
}
