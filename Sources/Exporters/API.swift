// CONTRACT STUBS — replaced by the real implementation (Exporters helpers). Signatures are the contract.
import Foundation
import Logging
import Metrics
import OTLPWire
import TraceAssembler

// MARK: - Destinations and delivery

/// What one delivery attempt came to.
public enum DeliveryOutcome: Sendable, Equatable {
    case delivered
    /// Delivered, but the receiver rejected some spans (OTLP partial success): logged and counted, not retried.
    case partiallyRejected(rejectedSpans: Int64, message: String)
    /// Transient (429, 502, 503, 504, connection failure, timeout): retry, after `after` if the server said so.
    case retryable(reason: String, after: Duration?)
    /// Will never succeed as is (other 4xx, MLflow's unknown experiment): dead-letter with the response.
    case permanent(reason: String, response: String)
}

/// A place finished traces go besides (or instead of) the embedded store.
public protocol TraceDestination: Sendable {
    var name: String { get }
    func deliver(_ traces: [FinishedTrace]) async -> DeliveryOutcome
    /// Releases connections.
    func shutdown() async
}
