import OTLPWire
import Receiver
import Synchronization

/// Records what reaches the pipeline and answers as told.
public final class RecordingIngest: SpanIngest {
    private let state = Mutex<(batches: [DecodedBatch], decision: IngestDecision)>(([], .accepted))

    public init(decision: IngestDecision = .accepted) {
        state.withLock { $0.decision = decision }
    }

    public func ingest(_ batch: DecodedBatch) async -> IngestDecision {
        state.withLock { state in
            state.batches.append(batch)
            return state.decision
        }
    }

    public var batches: [DecodedBatch] { state.withLock { $0.batches } }
    public var spanCount: Int { batches.reduce(0) { $0 + $1.spans.count } }
}
