import Metrics
import Synchronization

/// A `MetricsFactory` that keeps the latest value of every gauge and timer and the sum of every
/// counter, keyed `label{name=value,…}`, so that tests can read what a component reported.
package final class RecordingMetrics: MetricsFactory {
    private let values = Mutex<[String: Double]>([:])

    package init() {}

    package subscript(key: String) -> Double? { values.withLock { $0[key] } }

    private func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.isEmpty ? label : label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    package func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        Handler(key: key(label, dimensions), metrics: self, accumulates: true)
    }

    package func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        Handler(key: key(label, dimensions), metrics: self, accumulates: false)
    }

    package func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        Handler(key: key(label, dimensions), metrics: self, accumulates: false)
    }

    package func destroyCounter(_ handler: any CounterHandler) {}
    package func destroyRecorder(_ handler: any RecorderHandler) {}
    package func destroyTimer(_ handler: any TimerHandler) {}

    private final class Handler: CounterHandler, RecorderHandler, TimerHandler {
        let key: String
        let metrics: RecordingMetrics
        let accumulates: Bool

        init(key: String, metrics: RecordingMetrics, accumulates: Bool) {
            self.key = key
            self.metrics = metrics
            self.accumulates = accumulates
        }

        private func set(_ value: Double) {
            metrics.values.withLock { values in
                values[key] = accumulates ? values[key, default: 0] + value : value
            }
        }

        func increment(by amount: Int64) { set(Double(amount)) }
        func reset() { metrics.values.withLock { $0[key] = 0 } }
        func record(_ value: Int64) { set(Double(value)) }
        func record(_ value: Double) { set(value) }
        func recordNanoseconds(_ duration: Int64) { set(Double(duration)) }
    }
}
