"""MLflow's distributed-tracing example (client process → Flask server process), exported over OTLP
to Stitch, is stored as one trace that MLflow itself can load."""

import pytest
from mlflow.entities import Trace

from harness import has_spans, mlflow_trace_id, otel_env, run_app, tag_list
from mlflow_example import check_example_trace


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_mlflow_client_and_server_form_one_trace(transport, stitch_on_each_store, start_server_app, tmp_path):
    stitch = stitch_on_each_store
    # http: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf and the /v1/traces URL. grpc: only
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:<grpc port>, no protocol variable: MLflow's
    # OTLP exporter then uses gRPC, its default.
    grpc = transport == "grpc"
    server = start_server_app("mlflow_server.py", otel_env(stitch, "agent-server", grpc=grpc))
    client = run_app("mlflow_client.py", [f"{server.base_url}/agent-handler"], otel_env(stitch, "agent-client", grpc=grpc),
                     tmp_path)
    server.wait()
    trace_id = mlflow_trace_id(client.value("TRACE_ID"))

    stored = stitch.wait_for_trace(trace_id, until=has_spans("client-root", "server-handler", "lookup"))
    assert stored["info"]["state"] == "OK"
    assert tag_list(stored["info"], "stitch.services") == {"agent-client", "agent-server"}
    assert [t["trace_id"] for t in stitch.search(experiment_id="0")].count(trace_id) == 1
    assert stitch.metrics().value("stitch_spans_received_total", protocol=transport) >= 3

    # `stitch traces get --json` prints MLflow's Trace JSON: MLflow's own loader reads it.
    trace = Trace.from_json(stitch.cli_ok("traces", "get", trace_id, "--json"))
    check_example_trace(trace, trace_id)
