import OTLPWire

/// What the pipeline did with a decoded batch.
package enum IngestDecision: Sendable, Equatable {
    /// Taken; the client is answered 200 (with partial success for rejected spans).
    case accepted
    /// Not taken: the pipeline is full. The client keeps its data and retries after the delay.
    case refused(ReceiverError)
}

/// The receiver's one downstream edge: where decoded spans go.
package protocol SpanIngest: Sendable {
    func ingest(_ batch: DecodedBatch) async -> IngestDecision
}
