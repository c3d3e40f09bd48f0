"""Measures MLflow's own OTLP ingest against the same traces delivered through Stitch (not a test).

Starts a real `mlflow server` (SQLite backend, 127.0.0.1), then
1. "direct": posts each trace of a fixed set as one OTLP/protobuf request to MLflow's `/v1/traces`,
   one after the other (what an exporter does per batch), and reports spans/s and traces/s; and
   again with one trace-tag PATCH after each trace (the requests Stitch makes for a one-service trace);
2. "through Stitch": posts the same shape of traces (fresh ids) to a Stitch whose one destination is
   that MLflow server, and times from the first request until Stitch's /metrics show every trace
   delivered (its MLflow destination sends one trace per request, then sets the `stitch.completeness`
   tag, and `stitch.services` for a trace of several services, with one PATCH each).

Both runs are checked by counting the traces in their MLflow experiment.

Usage (from the package root):
    STITCH_BIN=.build/debug/stitch .venv/bin/python Tests/interop/measure_mlflow.py [--traces 200] [--spans 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import StitchServer, wait_until  # noqa: E402
from payloads import SPAN_KIND_SERVER, STATUS_OK, SpanSpec, new_trace_id, otlp_protobuf, otlp_protobuf_traces  # noqa: E402
from tracking_server import MlflowTrackingServer, tracking_client  # noqa: E402

PROTOBUF = "application/x-protobuf"


def make_traces(count: int, spans_per_trace: int) -> list[tuple[str, list[SpanSpec]]]:
    traces = []
    for _ in range(count):
        root = SpanSpec("root", kind=SPAN_KIND_SERVER, status=STATUS_OK)
        traces.append((new_trace_id(), [root] + [SpanSpec(f"child-{i}", parent=root) for i in range(1, spans_per_trace)]))
    return traces


def count_traces(tracking_uri: str, experiment_id: str) -> int:
    client = tracking_client(tracking_uri)
    total, token = 0, None
    while True:
        page = client.search_traces(locations=[experiment_id], include_spans=False, max_results=500, page_token=token)
        total += len(page)
        token = page.token
        if not token:
            return total


def measure_direct(mlflow: MlflowTrackingServer, experiment_id: str, traces, with_tag: bool = False) -> float:
    """Posts the traces one request each; `with_tag`: then sets one trace tag each, as Stitch does."""
    bodies = [(trace_hex, otlp_protobuf("direct", trace_hex, spans)) for trace_hex, spans in traces]
    session = requests.Session()
    started = time.perf_counter()
    for trace_hex, body in bodies:
        response = session.post(f"{mlflow.tracking_uri}/v1/traces", data=body, timeout=120,
                                headers={"Content-Type": PROTOBUF, "x-mlflow-experiment-id": experiment_id})
        response.raise_for_status()
        if with_tag:
            response = session.patch(f"{mlflow.tracking_uri}/api/3.0/mlflow/traces/tr-{trace_hex}/tags", timeout=120,
                                     json={"key": "stitch.completeness", "value": "closed"})
            response.raise_for_status()
    return time.perf_counter() - started


def measure_through_stitch(mlflow: MlflowTrackingServer, experiment_id: str, traces, workdir: Path) -> float:
    config = workdir / "stitch.yaml"
    config.write_text(f"""\
destinations:
  - name: mlflow
    mlflow: {{ tracking_uri: {mlflow.tracking_uri}, experiment_id: "{experiment_id}" }}
""")
    stitch = StitchServer(workdir, options=("--config", str(config), "--queue-dir", str(workdir / "queues"),
                                            "--idle-timeout", "100ms", "--log-level", "info")).start()
    try:
        started = time.perf_counter()
        for start in range(0, len(traces), 20):
            response = stitch.post("/v1/traces", otlp_protobuf_traces("via-stitch", traces[start:start + 20]), PROTOBUF)
            response.raise_for_status()
        wait_until("Stitch delivered every trace to MLflow",
                   lambda: stitch.metrics().value("stitch_destination_sent_traces_total") >= len(traces), 600.0)
        return time.perf_counter() - started
    finally:
        stitch.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--spans", type=int, default=10, help="spans per trace")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the MLflow server")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="measure-mlflow-") as tmp:
        workdir = Path(tmp)
        mlflow = MlflowTrackingServer(workdir / "mlflow", workers=args.workers).start()
        try:
            print(f"mlflow server ready after {mlflow.startup_seconds:.1f} s ({args.workers} worker(s))")
            client = tracking_client(mlflow.tracking_uri)
            direct_experiment = client.create_experiment("direct")
            tagged_experiment = client.create_experiment("direct-with-tag")
            stitch_experiment = client.create_experiment("through-stitch")
            spans = args.traces * args.spans

            direct = measure_direct(mlflow, direct_experiment, make_traces(args.traces, args.spans))
            tagged = measure_direct(mlflow, tagged_experiment, make_traces(args.traces, args.spans), with_tag=True)
            (workdir / "stitch").mkdir()
            through = measure_through_stitch(mlflow, stitch_experiment, make_traces(args.traces, args.spans), workdir / "stitch")

            for name, experiment in (("direct", direct_experiment), ("direct with tag", tagged_experiment),
                                     ("through Stitch", stitch_experiment)):
                stored = count_traces(mlflow.tracking_uri, experiment)
                assert stored == args.traces, f"{name}: {stored} of {args.traces} traces in MLflow"
            print(f"{args.traces} traces x {args.spans} spans = {spans} spans, one trace per request")
            print(f"direct to MLflow /v1/traces: {direct:7.2f} s  {spans / direct:8.1f} spans/s  {args.traces / direct:7.1f} traces/s")
            print(f"direct, then one tag PATCH:  {tagged:7.2f} s  {spans / tagged:8.1f} spans/s  {args.traces / tagged:7.1f} traces/s")
            print(f"through Stitch:              {through:7.2f} s  {spans / through:8.1f} spans/s  {args.traces / through:7.1f} traces/s")
        finally:
            mlflow.stop()


if __name__ == "__main__":
    main()
