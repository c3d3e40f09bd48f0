"""The sidecar layout of the README: a Stitch next to each service forwards (otlp destination, short
max_trace_age) to a central Stitch, which joins the services' pieces into one trace."""

from __future__ import annotations

from pathlib import Path

from harness import has_spans, mlflow_trace_id, otel_env, parent_names, run_app, tag_list

A_SPANS = ("A-root", "A-call-B", "A-postprocess")
B_SPANS = ("B-handler", "B-db")
EXPERIMENT = "7"


def sidecar_config(path: Path, central_url: str) -> Path:
    # As in the README's sidecar example (listen, queue_dir and db come from the harness's flags).
    path.write_text(f"""\
idle_timeout: 500ms
max_trace_age: 1s
destinations:
  - name: central
    otlp:
      endpoint: {central_url}
      headers: {{ x-mlflow-experiment-id: "{EXPERIMENT}" }}
""")
    return path


def test_sidecars_forward_to_a_central_stitch_that_joins_the_trace(start_stitch, start_server_app, tmp_path):
    # The central Stitch keeps the default idle timeout (2 s), above the sidecars' max_trace_age.
    central = start_stitch(options=("--idle-timeout", "2s", "--max-trace-age", "30s", "--log-level", "debug"))
    sidecars = []
    for service in ("a", "b"):
        config = sidecar_config(tmp_path / f"sidecar-{service}.yaml", central.base_url)  # a URL without a path
        sidecars.append(start_stitch(options=("--config", str(config), "--queue-dir", str(tmp_path / f"queues-{service}"),
                                              "--log-level", "debug")))
    sidecar_a, sidecar_b = sidecars

    service_b = start_server_app("otel_service_b.py", otel_env(sidecar_b, "service-b"))
    client = run_app("otel_service_a.py", [f"{service_b.base_url}/work"], otel_env(sidecar_a, "service-a"), tmp_path)
    service_b.wait()
    trace_id = mlflow_trace_id(client.value("TRACE_ID"))

    stored = central.wait_for_trace(trace_id, until=has_spans(*A_SPANS, *B_SPANS))

    assert parent_names(stored) == {
        "A-root": None, "A-call-B": "A-root", "A-postprocess": "A-root", "B-handler": "A-call-B", "B-db": "B-handler",
    }
    info = stored["info"]
    assert info["state"] == "OK"
    assert tag_list(info, "stitch.services") == {"service-a", "service-b"}
    # The sidecars' header put the trace into the experiment, once.
    assert info["trace_location"]["mlflow_experiment"]["experiment_id"] == EXPERIMENT
    assert [t["trace_id"] for t in central.search(experiment_id=EXPERIMENT)] == [trace_id]
    # B's sidecar never saw the root: it released its piece incomplete, after max_trace_age.
    metrics = sidecar_b.metrics()
    assert metrics.value("stitch_traces_released_total", reason="timeout") == 1, metrics.samples
    assert sidecar_a.metrics().value("stitch_destination_sent_traces_total", destination="central") >= 1
