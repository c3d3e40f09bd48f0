/// Where and how an `MLflowExporter` sends traces.
///
/// `description` never shows header values.
package struct MLflowExporterConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// The tracking server's base URL, e.g. `http://mlflow:5000` (a path prefix is kept).
    package var trackingURI: String
    /// The experiment for traces that name none (or for every trace, when `experimentFromTrace` is
    /// false). Nil means MLflow's default experiment, "0".
    package var experimentID: String?
    /// Send each trace to the experiment its own requests named (`FinishedTrace.experimentID`),
    /// falling back to `experimentID`. Default true.
    package var experimentFromTrace: Bool
    /// Extra request headers (e.g. `authorization` for a server behind a proxy). Never logged.
    package var headers: [String: String]
    /// Default gzip (the tracking server accepts gzip and deflate).
    package var compression: HTTPCompression
    /// Per request. Default 60 s: MLflow stores ~200–300 spans/s, so a large trace takes tens of
    /// seconds, and a request cut off by the timeout is sent again whole.
    package var timeout: Duration
    /// Set `stitch.completeness` (and `stitch.services` for a trace of several services) through
    /// the trace-tag endpoint after the spans. Default true.
    package var setTraceTags: Bool

    package init(
        trackingURI: String, experimentID: String? = nil, experimentFromTrace: Bool = true,
        headers: [String: String] = [:], compression: HTTPCompression = .gzip,
        timeout: Duration = .seconds(60), setTraceTags: Bool = true
    ) {
        self.trackingURI = trackingURI
        self.experimentID = experimentID
        self.experimentFromTrace = experimentFromTrace
        self.headers = headers
        self.compression = compression
        self.timeout = timeout
        self.setTraceTags = setTraceTags
    }

    /// MLflow's default experiment.
    package static let defaultExperimentID = "0"

    /// The experiment a trace is sent to.
    package func experiment(forTraceExperiment traceExperiment: String?) -> String {
        if experimentFromTrace, let traceExperiment, !traceExperiment.isEmpty { return traceExperiment }
        return experimentID ?? Self.defaultExperimentID
    }

    /// `trackingURI` without a trailing slash, so paths can be appended.
    package var baseURL: String {
        var base = trackingURI
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }

    /// `<tracking_uri>/v1/traces`: the server's OTLP endpoint.
    package var tracesURL: String { baseURL + "/v1/traces" }

    /// `PATCH <tracking_uri>/api/3.0/mlflow/traces/<trace id>/tags` (MLflow's `SetTraceTagV3`,
    /// body `{"key": …, "value": …}`); MLflow names an OTLP trace `tr-` + its 32 hex digits.
    package func traceTagURL(mlflowTraceID: String) -> String {
        baseURL + "/api/3.0/mlflow/traces/" + mlflowTraceID + "/tags"
    }

    /// Every problem, as `field: what is wrong` (empty when valid).
    package func problems() -> [String] {
        var problems = HTTPDeliveryValidation.urlProblems(trackingURI, field: "tracking_uri")
        problems += HTTPDeliveryValidation.headerProblems(headers, field: "headers")
        problems += HTTPDeliveryValidation.timeoutProblems(timeout, field: "timeout")
        if let experimentID, experimentID.isEmpty || !experimentID.allSatisfy(\.isASCII) || experimentID.contains(where: \.isWhitespace) {
            problems.append("experiment_id: must be a non-empty experiment id without spaces")
        }
        return problems
    }

    package var description: String {
        "MLflow \(baseURL) experiment=\(experimentID ?? Self.defaultExperimentID)"
            + (experimentFromTrace ? " (or the trace's)" : "")
            + " compression=\(compression.rawValue) timeout=\(timeout) headers=\(HTTPDeliveryValidation.redacted(headers))"
    }
}
