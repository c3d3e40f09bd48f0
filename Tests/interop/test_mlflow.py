"""MLflow's distributed-tracing example (client process → Flask server process), exported over OTLP
to Stitch, is stored as one trace that MLflow itself can load."""

from mlflow.entities import Trace, TraceState
from mlflow.entities.span_status import SpanStatusCode

from harness import has_spans, mlflow_trace_id, otel_env, run_app, tag_list

QUESTION = {"question": "where is my trace?"}


def test_mlflow_client_and_server_form_one_trace(stitch, start_server_app, tmp_path):
    # Without OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf MLflow would try gRPC (otel_env sets it).
    server = start_server_app("mlflow_server.py", otel_env(stitch, "agent-server"))
    client = run_app("mlflow_client.py", [f"{server.base_url}/agent-handler"], otel_env(stitch, "agent-client"), tmp_path)
    server.wait()
    trace_id = mlflow_trace_id(client.value("TRACE_ID"))

    stored = stitch.wait_for_trace(trace_id, until=has_spans("client-root", "server-handler", "lookup"))
    assert stored["info"]["state"] == "OK"
    assert tag_list(stored["info"], "stitch.services") == {"agent-client", "agent-server"}
    assert [t["trace_id"] for t in stitch.search(experiment_id="0")].count(trace_id) == 1

    # `stitch traces get --json` prints MLflow's Trace JSON: MLflow's own loader reads it.
    trace = Trace.from_json(stitch.cli_ok("traces", "get", trace_id, "--json"))
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
