import OTLPWire
import Receiver
import Synchronization

/// Records what reaches the pipeline and answers as told.
package final class RecordingIngest: SpanIngest {
    private let state = Mutex<(batches: [DecodedBatch], decision: IngestDecision)>(([], .accepted))

    package init(decision: IngestDecision = .accepted) {
        state.withLock { $0.decision = decision }
    }

    package func ingest(_ batch: DecodedBatch) async -> IngestDecision {
        state.withLock { state in
            state.batches.append(batch)
            return state.decision
        }
    }

    package var batches: [DecodedBatch] { state.withLock { $0.batches } }
    package var spanCount: Int { batches.reduce(0) { $0 + $1.spans.count } }
}
