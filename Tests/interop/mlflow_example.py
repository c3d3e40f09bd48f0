"""What MLflow's distributed-tracing example (apps/mlflow_client.py → apps/mlflow_server.py) must
look like once joined: one trace, OK, client-root → server-handler → lookup, with MLflow's inputs and
outputs. Shared by the tests that read it back from Stitch's store and from an MLflow server."""

from __future__ import annotations

from mlflow.entities import Trace, TraceState
from mlflow.entities.span_status import SpanStatusCode

#: The request apps/mlflow_client.py sends (and records as client-root's inputs).
QUESTION = {"question": "where is my trace?"}


def check_example_trace(trace: Trace, trace_id: str) -> None:
    """Asserts that `trace` (an MLflow Trace) is the whole example trace `trace_id`."""
    assert trace.info.trace_id == trace_id
    assert trace.info.state == TraceState.OK
    spans = {span.name: span for span in trace.data.spans}
    assert sorted(spans) == ["client-root", "lookup", "server-handler"]
    assert spans["client-root"].parent_id is None
    assert spans["server-handler"].parent_id == spans["client-root"].span_id
    assert spans["lookup"].parent_id == spans["server-handler"].span_id
    assert all(span.status.status_code == SpanStatusCode.OK for span in spans.values())
    # MLflow's span attributes come through (inputs, outputs).
    assert spans["client-root"].inputs == QUESTION
    assert spans["server-handler"].inputs == QUESTION
    assert spans["lookup"].outputs == {"answer": f"looked up: {QUESTION['question']}"}
