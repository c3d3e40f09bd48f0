"""Stitch forwarding to a real MLflow tracking server (`mlflow server`, SQLite backend).

MLflow's distributed-tracing example (client and server processes, each exporting its own spans over
OTLP to Stitch) must appear in MLflow as ONE finished trace with all its spans, state OK; a trace
whose root never arrives must carry the tag `stitch.completeness` = `timeout` in MLflow, so that it
can be found instead of sitting there, silently IN_PROGRESS.

The tracking server is started once per session (fixture `mlflow_tracking`, ~30 s); each test runs
its own Stitch whose only destination is that server, read back with `MlflowClient().get_trace`.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Callable

import pytest
from mlflow.entities import Trace, TraceState
from mlflow.exceptions import MlflowException
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from harness import StitchServer, fixtures_dir, mlflow_trace_id, otel_env, run_app, tail, wait_until
from mlflow_example import check_example_trace
from payloads import SPAN_KIND_SERVER, STATUS_OK, SpanSpec, new_trace_id, otlp_protobuf
from tracking_server import MlflowTrackingServer, tracking_client

#: How long a trace may take from Stitch's release to MLflow (MLflow stores a few hundred spans/s).
MLFLOW_WAIT_S = 60.0


@pytest.fixture(scope="module")
def experiment_id(mlflow_tracking: MlflowTrackingServer) -> str:
    """A fresh experiment in the session's tracking server."""
    return tracking_client(mlflow_tracking.tracking_uri).create_experiment(f"stitch-interop-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def start_stitch_to_mlflow(start_stitch, tmp_path: Path, mlflow_tracking: MlflowTrackingServer,
                           experiment_id: str) -> Callable[..., StitchServer]:
    """Starts a Stitch whose one destination (config file) is the tracking server's experiment."""

    def start(*options: str, experiment: str = experiment_id) -> StitchServer:
        config = tmp_path / "stitch-mlflow.yaml"
        config.write_text(f"""\
destinations:
  - name: mlflow
    mlflow:
      tracking_uri: {mlflow_tracking.tracking_uri}
      experiment_id: "{experiment}"
    retry: {{ initial_interval: 200ms, max_interval: 2s }}
""")
        return start_stitch(options=("--config", str(config), "--queue-dir", str(tmp_path / "queues"),
                                     "--log-level", "debug", *options))

    return start


def wait_for_mlflow_trace(mlflow_tracking: MlflowTrackingServer, stitch: StitchServer, trace_id: str,
                          until: Callable[[Trace], bool]) -> Trace:
    """Polls `MlflowClient.get_trace` until the trace exists and `until(trace)` holds."""
    client = tracking_client(mlflow_tracking.tracking_uri)
    deadline = time.monotonic() + MLFLOW_WAIT_S
    last: Trace | None = None
    while time.monotonic() < deadline:
        assert stitch.proc.poll() is None, f"stitch exited with {stitch.proc.returncode}; log:\n{tail(stitch.log_path)}"
        try:
            last = client.get_trace(trace_id)
        except MlflowException:
            last = None
        if last is not None and until(last):
            return last
        time.sleep(0.25)
    summary = "not in MLflow" if last is None else (
        f"state {last.info.state}, spans {sorted(span.name for span in last.data.spans)}, tags {last.info.tags}")
    raise AssertionError(f"trace {trace_id} not as expected in MLflow after {MLFLOW_WAIT_S} s: {summary}\n"
                         f"stitch log:\n{tail(stitch.log_path)}\nmlflow log:\n{tail(mlflow_tracking.log_path, 20)}")


def tagged(trace: Trace) -> bool:
    """Stitch sets its tags after the spans: once there, the delivery is complete."""
    return "stitch.completeness" in trace.info.tags


def test_distributed_example_is_one_finished_trace_in_mlflow(start_stitch_to_mlflow, start_server_app, tmp_path,
                                                              mlflow_tracking, experiment_id):
    # The default idle timeout (2 s): the two processes export at exit, in either order, and a
    # trace released before the other process's spans came would reach MLflow in two parts.
    stitch = start_stitch_to_mlflow("--idle-timeout", "2s", "--max-trace-age", "30s")
    server = start_server_app("mlflow_server.py", otel_env(stitch, "agent-server"))
    client = run_app("mlflow_client.py", [f"{server.base_url}/agent-handler"], otel_env(stitch, "agent-client"), tmp_path)
    server.wait()
    trace_id = mlflow_trace_id(client.value("TRACE_ID"))

    trace = wait_for_mlflow_trace(mlflow_tracking, stitch, trace_id,
                                  until=lambda t: tagged(t) and len(t.data.spans) == 3)

    check_example_trace(trace, trace_id)
    assert trace.info.experiment_id == experiment_id
    assert trace.info.tags["stitch.completeness"] == "closed"
    assert trace.info.tags["stitch.services"] == "agent-client,agent-server"

    # One trace in the experiment, not one per process.
    found = tracking_client(mlflow_tracking.tracking_uri).search_traces(
        locations=[experiment_id], include_spans=False, max_results=500)
    assert [t.info.trace_id for t in found].count(trace_id) == 1


def rootless_request(trace_hex: str) -> bytes:
    """Fixture 05 (MLflow's Flask server exporting `server-handler` and `lookup`, whose root
    `client-root` lives in another process) under a fresh trace id: the root never comes."""
    request = ExportTraceServiceRequest()
    request.ParseFromString((fixtures_dir() / "05-mlflow-otlpexport-remote-server-2spans.pb").read_bytes())
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span.trace_id = bytes.fromhex(trace_hex)
    return request.SerializeToString()


def test_rootless_trace_is_tagged_timeout_in_mlflow(start_stitch_to_mlflow, mlflow_tracking, experiment_id):
    stitch = start_stitch_to_mlflow("--idle-timeout", "300ms", "--max-trace-age", "2s")
    trace_hex = new_trace_id()
    trace_id = mlflow_trace_id(trace_hex)
    response = stitch.post("/v1/traces", rootless_request(trace_hex), "application/x-protobuf")
    assert response.status_code == 200, response.text

    trace = wait_for_mlflow_trace(mlflow_tracking, stitch, trace_id, until=tagged)

    assert trace.info.tags["stitch.completeness"] == "timeout"
    assert sorted(span.name for span in trace.data.spans) == ["lookup", "server-handler"]
    assert trace.info.experiment_id == experiment_id
    # MLflow itself cannot finish a trace without its root: the tag is what tells users why.
    assert trace.info.state == TraceState.IN_PROGRESS

    # Users find such traces by the tag.
    found = tracking_client(mlflow_tracking.tracking_uri).search_traces(
        locations=[experiment_id], filter_string="tag.`stitch.completeness` = 'timeout'", include_spans=False)
    assert trace_id in [t.info.trace_id for t in found]


def test_trace_for_an_unknown_experiment_is_a_dead_letter(start_stitch_to_mlflow, mlflow_tracking, tmp_path):
    # MLflow answers 404 for an experiment it does not have: permanent, so the trace is set aside
    # with MLflow's answer instead of being retried for ever, and the sender goes on.
    missing = "987654321"
    client = tracking_client(mlflow_tracking.tracking_uri)
    with pytest.raises(MlflowException):
        client.get_experiment(missing)
    stitch = start_stitch_to_mlflow("--idle-timeout", "300ms", "--max-trace-age", "5s", experiment=missing)
    root = SpanSpec("lost-root", kind=SPAN_KIND_SERVER, status=STATUS_OK)
    trace_hex = new_trace_id()
    response = stitch.post("/v1/traces", otlp_protobuf("svc", trace_hex, [root, SpanSpec("child", parent=root)]),
                           "application/x-protobuf")
    assert response.status_code == 200, response.text

    wait_until("the trace is dead-lettered",
               lambda: stitch.metrics().value("stitch_destination_dead_lettered_traces_total", destination="mlflow") == 1,
               MLFLOW_WAIT_S, lambda: tail(stitch.log_path, 20))
    metrics = stitch.metrics()
    assert metrics.value("stitch_destination_sent_traces_total", destination="mlflow") == 0
    assert metrics.value("stitch_queue_traces", destination="mlflow") == 0
    dead_letters = tmp_path / "queues" / "mlflow" / "dead-letters"
    assert any(dead_letters.iterdir()), f"nothing in {dead_letters}"
    # The log says why, naming the experiment.
    assert f"MLflow experiment {missing} does not exist" in stitch.log_path.read_text()
    with pytest.raises(MlflowException):
        client.get_trace(mlflow_trace_id(trace_hex))
