"""OTLP/gRPC, the exporters' default protocol: two processes with the OpenTelemetry SDK's gRPC exporter,
given only OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:<grpc port>, form one stored trace.
(MLflow's example over gRPC: test_mlflow.py, transport "grpc".)"""

from harness import has_spans, mlflow_trace_id, otel_env, parent_names, run_app, span_names, tag_list

A_SPANS = ("A-root", "A-call-B", "A-postprocess")
B_SPANS = ("B-handler", "B-db")


def test_grpc_two_sdk_processes_form_one_trace(stitch, start_server_app, tmp_path):
    service_b = start_server_app("otel_service_b.py", otel_env(stitch, "service-b", grpc=True))
    client = run_app("otel_service_a.py", [f"{service_b.base_url}/work"], otel_env(stitch, "service-a", grpc=True), tmp_path)
    service_b.wait()
    trace_id = mlflow_trace_id(client.value("TRACE_ID"))

    stored = stitch.wait_for_trace(trace_id, until=has_spans(*A_SPANS, *B_SPANS))
    assert span_names(stored) == sorted(A_SPANS + B_SPANS)
    assert parent_names(stored)["B-handler"] == "A-call-B"
    assert tag_list(stored["info"], "stitch.services") == {"service-a", "service-b"}
    assert [t["trace_id"] for t in stitch.search(experiment_id="0")].count(trace_id) == 1
    # Every span came in over gRPC.
    metrics = stitch.metrics()
    assert metrics.value("stitch_spans_received_total", protocol="grpc") == len(A_SPANS + B_SPANS)
    assert metrics.value("stitch_spans_received_total", protocol="http") == 0

