"""MLflow's distributed-tracing example (client process → Flask server process), exported over OTLP
to Stitch, is stored as one trace that MLflow itself can load."""

from mlflow.entities import Trace

from harness import has_spans, mlflow_trace_id, otel_env, run_app, tag_list
from mlflow_example import check_example_trace


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
    check_example_trace(trace, trace_id)
