"""Stitch's HTTP side with hand-made requests: OTLP/JSON, gzip, bad bodies, experiments, shutdown."""

import gzip

from harness import has_spans, mlflow_trace_id, parent_names, span_names, spans_of, b64_to_hex
from payloads import (
    SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_OK, SpanSpec, new_span_id, new_trace_id, otlp_json, otlp_protobuf,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def closed_trace() -> list[SpanSpec]:
    root = SpanSpec("root", kind=SPAN_KIND_SERVER, status=STATUS_OK)
    return [root, SpanSpec("child", parent=root, kind=SPAN_KIND_CLIENT)]


def test_otlp_json_post_is_stored(stitch):
    trace_hex, spans = new_trace_id(), closed_trace()

    response = stitch.post("/v1/traces", otlp_json("json-client", trace_hex, spans), f"{JSON}; charset=utf-8")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(JSON)  # OTLP/HTTP: the request's content type

    stored = stitch.wait_for_trace(mlflow_trace_id(trace_hex))
    assert span_names(stored) == ["child", "root"]
    assert parent_names(stored) == {"root": None, "child": "root"}
    assert {b64_to_hex(span["span_id"]) for span in spans_of(stored)} == {spec.span_id for spec in spans}
    assert stored["info"]["state"] == "OK"
    assert stored["info"]["tags"]["stitch.completeness"] == "closed"


def test_gzip_protobuf_post_to_root_path(stitch):
    trace_hex = new_trace_id()
    root = SpanSpec("gz-root", kind=SPAN_KIND_SERVER)
    spans = [root, SpanSpec("gz-a", parent=root), SpanSpec("gz-b", parent=root)]

    body = gzip.compress(otlp_protobuf("gzip-client", trace_hex, spans))
    response = stitch.post("/", body, PROTOBUF, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text

    stored = stitch.wait_for_trace(mlflow_trace_id(trace_hex))
    assert span_names(stored) == ["gz-a", "gz-b", "gz-root"]
    assert parent_names(stored) == {"gz-root": None, "gz-a": "gz-root", "gz-b": "gz-root"}
    assert stored["info"]["state"] == "OK"


def test_malformed_bodies_get_400_and_the_server_keeps_serving(stitch):
    # Field 1 (resource_spans), length-delimited, claiming 100 bytes of which 3 follow.
    truncated_protobuf = b"\x0a\x64abc"
    assert stitch.post("/v1/traces", truncated_protobuf, PROTOBUF).status_code == 400
    assert stitch.post("/v1/traces", b'{"resourceSpans": [', JSON).status_code == 400
    assert stitch.post("/v1/traces", b"\x1f\x8b not gzip at all", PROTOBUF, headers={"Content-Encoding": "gzip"}).status_code == 400

    assert stitch.get("/healthz").status_code == 200
    trace_hex = new_trace_id()
    assert stitch.post("/v1/traces", otlp_protobuf("after-errors", trace_hex, closed_trace()), PROTOBUF).status_code == 200
    assert span_names(stitch.wait_for_trace(mlflow_trace_id(trace_hex))) == ["child", "root"]


def test_experiment_header_selects_the_experiment(stitch):
    in_default, in_five = new_trace_id(), new_trace_id()
    assert stitch.post("/v1/traces", otlp_protobuf("svc", in_default, closed_trace()), PROTOBUF).status_code == 200
    response = stitch.post("/v1/traces", otlp_protobuf("svc", in_five, closed_trace()), PROTOBUF,
                           headers={"x-mlflow-experiment-id": "5"})
    assert response.status_code == 200, response.text

    stored = stitch.wait_for_trace(mlflow_trace_id(in_five))
    assert stored["info"]["trace_location"]["mlflow_experiment"]["experiment_id"] == "5"
    stitch.wait_for_trace(mlflow_trace_id(in_default))
    assert [t["trace_id"] for t in stitch.search(experiment_id="5")] == [mlflow_trace_id(in_five)]
    assert [t["trace_id"] for t in stitch.search(experiment_id="0")] == [mlflow_trace_id(in_default)]


def test_healthz_and_metrics(stitch):
    assert stitch.get("/healthz").status_code == 200
    metrics = stitch.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE " in metrics.text


def test_sigterm_flushes_a_buffered_trace(start_stitch):
    # `stitch` without a subcommand serves; a long max age keeps a root-less trace buffered.
    stitch = start_stitch(options=("--idle-timeout", "300ms", "--max-trace-age", "10m"), subcommand=())
    trace_hex = new_trace_id()
    orphan = SpanSpec("orphan", parent_id=new_span_id())  # its parent never arrives
    assert stitch.post("/v1/traces", otlp_protobuf("svc", trace_hex, [orphan]), PROTOBUF).status_code == 200
    trace_id = mlflow_trace_id(trace_hex)
    assert stitch.api_trace(trace_id) is None  # still buffered: no root

    assert stitch.stop(timeout=20) == 0

    stored = stitch.cli_trace_json(trace_id)
    assert span_names(stored) == ["orphan"]
    assert stored["info"]["tags"]["stitch.completeness"] == "shutdown"
