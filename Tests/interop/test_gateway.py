"""An agent and the MLflow AI Gateway it called, through Stitch: one navigable picture.

Real processes only, but for the model provider: a real `mlflow server` (the version pinned in
requirements.txt) runs the AI Gateway with an endpoint created through its REST API
(`usage_tracking` on) and exports its spans over OTLP to Stitch (`OTEL_EXPORTER_OTLP_TRACES_*` in
its environment, the README's recipe); an agent process traced with MLflow calls the endpoint with
the headers of `get_tracing_context_headers_for_http_request()` and exports to Stitch as well. The
provider is a small OpenAI-compatible server in this test that answers with a `usage` object.

Expected in Stitch's store: the agent's trace stitched from both processes (its root, the gateway's
`gateway/<endpoint>` span and its provider child), closed; the gateway's own trace in the endpoint's
experiment; the link both ways (CLI, API, search filter); token usage counted once. Expected in
MLflow, whichever way Stitch delivers into it (the `mlflow` destination into the same server, or
`mlflow_database` into its database): both traces, each in its experiment, the agent's gateway span
keeping `mlflow.gateway.linkedTraceId` (MLflow's UI shows "View gateway trace" from it).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from harness import (StitchServer, b64_to_hex, free_port, mlflow_trace_id, otel_env, parent_names, run_app, span_names, spans_of,
                     tail, wait_until)
from tracking_server import MlflowTrackingServer, tracking_client

ENDPOINT = "chat"
MODEL = "gpt-4o-mini"
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
#: MLflow's trace metadata for that usage.
TOKEN_USAGE = {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}
#: Until both traces are in Stitch and in MLflow (the gateway server exports every 200 ms here).
WAIT_S = 60.0


class ChatProvider:
    """The one stand-in: an OpenAI-compatible `/v1/chat/completions` on 127.0.0.1 that answers every
    request with the same message and `USAGE`, and keeps the requests it got."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                provider.requests.append({"path": self.path, "body": body})
                answer = json.dumps({
                    "id": "chatcmpl-stitch", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", MODEL),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "it is in Stitch"},
                                 "finish_reason": "stop"}],
                    "usage": USAGE,
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[ChatProvider]:
    server = ChatProvider()
    try:
        yield server
    finally:
        server.stop()


class GatewayScene:
    """Stitch, and an `mlflow server` running the AI Gateway that exports its spans to that Stitch."""

    def __init__(self, stitch: StitchServer, mlflow: MlflowTrackingServer, agent_experiment: str):
        self.stitch = stitch
        self.mlflow = mlflow
        #: Where the agent's exporter sends its spans (`x-mlflow-experiment-id`).
        self.agent_experiment = agent_experiment


def create_endpoint(server: MlflowTrackingServer, api_base: str) -> None:
    """The gateway's secret, model definition and endpoint, through MLflow's REST API."""
    api = f"{server.tracking_uri}/api/3.0/mlflow/gateway"

    def post(path: str, body: dict) -> dict:
        answer = requests.post(f"{api}/{path}", json=body, timeout=30)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
        return answer.json()

    secret = post("secrets/create", {"secret_name": "stand-in", "provider": "openai",
                                     "secret_value": {"api_key": "sk-stand-in"}, "auth_config": {"api_base": api_base}})
    model = post("model-definitions/create", {"name": "stand-in-mini", "secret_id": secret["secret"]["secret_id"],
                                              "provider": "openai", "model_name": MODEL})
    post("endpoints/create", {"name": ENDPOINT, "usage_tracking": True, "model_configs": [
        {"model_definition_id": model["model_definition"]["model_definition_id"], "linkage_type": "PRIMARY", "weight": 1}]})


@pytest.fixture(params=["mlflow", "mlflow_database"])
def scene(request: pytest.FixtureRequest, tmp_path: Path, start_stitch: Callable[..., StitchServer],
          provider: ChatProvider) -> Iterator[GatewayScene]:
    """The gateway server with its endpoint, and a Stitch (its store, plus one MLflow destination
    that delivers into the same server) that both the server and the agent export to."""
    stitch_port = free_port()
    mlflow = MlflowTrackingServer(tmp_path / "mlflow", env={
        # MLflow 3.17 allows only public HTTPS provider URLs without these two.
        "MLFLOW_GATEWAY_API_BASE_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true",
        # The recipe: the server process exports its spans (gateway traces and the mirror spans in
        # the callers' traces) over OTLP to Stitch.
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{stitch_port}/v1/traces",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "mlflow-gateway",
        # A process-wide experiment header, which each gateway trace's own experiment must beat.
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-mlflow-experiment-id=0",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    })
    try:
        mlflow.start()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        if request.param == "mlflow":
            destination = f"mlflow: {{ tracking_uri: {mlflow.tracking_uri} }}"
        else:
            destination = f"mlflow_database: {{ url: \"{mlflow.backend_store_uri}\" }}"
        config = tmp_path / "stitch.yaml"
        store = tmp_path / "stitch-data" / "stitch.db"
        config.write_text(f"""\
destinations:
  - name: store
    store: {{ path: {store} }}
  - name: into-mlflow
    {destination}
    retry: {{ initial_interval: 200ms, max_interval: 2s }}
""")
        stitch = start_stitch(options=("--config", str(config), "--queue-dir", str(tmp_path / "queues"),
                                       "--idle-timeout", "2s", "--max-trace-age", "30s", "--log-level", "debug"),
                              port=stitch_port, db=str(store))
        create_endpoint(mlflow, provider.api_base)
        client = tracking_client(mlflow.tracking_uri)
        agent_experiment = client.create_experiment(f"agent-{uuid.uuid4().hex[:8]}")
        yield GatewayScene(stitch, mlflow, agent_experiment=agent_experiment)
    finally:
        mlflow.stop()


def call_gateway(scene: GatewayScene, tmp_path: Path) -> str:
    """Runs the agent; returns its trace id (`tr-…`)."""
    env = otel_env(scene.stitch, "agent",
                   OTEL_EXPORTER_OTLP_TRACES_HEADERS=f"x-mlflow-experiment-id={scene.agent_experiment}")
    result = run_app("gateway_agent.py", [scene.mlflow.tracking_uri, ENDPOINT], env, tmp_path)
    assert result.value("ANSWER") == "it is in Stitch"
    return mlflow_trace_id(result.value("TRACE_ID"))


def pinned_mlflow() -> str:
    """The MLflow version requirements.txt pins (the gateway's behaviour here is that version's)."""
    for line in (Path(__file__).parent / "requirements.txt").read_text().splitlines():
        if line.startswith("mlflow=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError("requirements.txt pins no mlflow version")


def test_the_agent_and_its_gateway_call_are_one_navigable_picture(scene: GatewayScene, provider: ChatProvider,
                                                                   tmp_path: Path) -> None:
    server_version = requests.get(f"{scene.mlflow.tracking_uri}/version", timeout=10).text.strip()
    assert server_version == pinned_mlflow(), f"the gateway under test is MLflow {server_version}"
    stitch = scene.stitch
    agent_id = call_gateway(scene, tmp_path)
    assert len(provider.requests) == 1 and provider.requests[0]["path"] == "/v1/chat/completions"
    gateway_experiment = tracking_client(scene.mlflow.tracking_uri).get_experiment_by_name(f"gateway/{ENDPOINT}")
    assert gateway_experiment is not None, "the gateway made no experiment for its endpoint"
    endpoint_experiment = gateway_experiment.experiment_id
    assert endpoint_experiment not in ("0", scene.agent_experiment)

    # The agent's trace, stitched from the agent's process and the gateway's mirror spans.
    provider_span = f"provider/openai/{MODEL}"
    agent = stitch.wait_for_trace(agent_id, lambda t: {"agent-root", f"gateway/{ENDPOINT}", provider_span}
                                  <= set(span_names(t)), timeout=WAIT_S)
    info = agent["info"]
    assert sorted(span_names(agent)) == sorted(["agent-root", f"gateway/{ENDPOINT}", provider_span])
    assert parent_names(agent) == {"agent-root": None, f"gateway/{ENDPOINT}": "agent-root",
                                   provider_span: f"gateway/{ENDPOINT}"}
    assert info["state"] == "OK"
    assert info["tags"]["stitch.completeness"] == "closed"
    assert set(info["tags"]["stitch.services"].split(",")) == {"agent", "mlflow-gateway"}
    assert info["trace_location"]["mlflow_experiment"]["experiment_id"] == scene.agent_experiment
    assert json.loads(info["trace_metadata"]["mlflow.trace.tokenUsage"]) == TOKEN_USAGE
    gateway_span = next(s for s in spans_of(agent) if s["name"] == f"gateway/{ENDPOINT}")
    gateway_id = json.loads(gateway_span["attributes"]["mlflow.gateway.linkedTraceId"])
    assert gateway_id.startswith("tr-") and gateway_id != agent_id
    calling_span = b64_to_hex(gateway_span["span_id"])

    # The gateway's own trace, in its endpoint's experiment (its root's mlflow.experimentId beats
    # the server's process-wide header).
    gateway = stitch.wait_for_trace(gateway_id, lambda t: len(spans_of(t)) == 2, timeout=WAIT_S)
    assert gateway["info"]["trace_location"]["mlflow_experiment"]["experiment_id"] == endpoint_experiment
    assert parent_names(gateway) == {f"gateway/{ENDPOINT}": None, provider_span: f"gateway/{ENDPOINT}"}
    assert json.loads(gateway["info"]["trace_metadata"]["mlflow.trace.tokenUsage"]) == TOKEN_USAGE

    # The links, both ways, over the API and in searches.
    link = {"trace_id": gateway_id, "span_id": calling_span, "endpoint": ENDPOINT}
    assert stitch.get(f"/api/v1/traces/{agent_id}/links").json() == {"trace_id": agent_id, "calls": [link], "called_by": []}
    assert stitch.get(f"/api/v1/traces/{gateway_id}/links").json() == {
        "trace_id": gateway_id, "calls": [], "called_by": [{**link, "trace_id": agent_id}]}
    assert [t["trace_id"] for t in stitch.search(filter=f"gateway.endpoint = '{ENDPOINT}'")] == [agent_id]
    assert [t["trace_id"] for t in stitch.search(filter=f"gateway.trace_id = '{gateway_id}'")] == [agent_id]
    assert [t["trace_id"] for t in stitch.search(filter=f"gateway.caller_trace_id = '{agent_id}'")] == [gateway_id]

    # `stitch traces get`, as a user reads it.
    tree = stitch.cli_ok("traces", "get", agent_id)
    assert f"calls:     {gateway_id}  (gateway endpoint {ENDPOINT}, from span {calling_span})" in tree
    assert any(line.strip().startswith(f"gateway/{ENDPOINT}") and line.endswith(f"calls {gateway_id}")
               for line in tree.splitlines()), tree
    inline = stitch.cli_ok("traces", "get", agent_id, "--linked")
    linked_rows = [line for line in inline.splitlines() if "»" in line]
    assert [row.split("»")[1].split()[0] for row in linked_rows] == [f"gateway/{ENDPOINT}", provider_span], inline
    assert all(row.endswith(f"in {gateway_id}") for row in linked_rows), inline
    caller = stitch.cli_ok("traces", "get", gateway_id)
    assert f"called by: {agent_id}  (gateway endpoint {ENDPOINT}, span {calling_span})" in caller

    # In MLflow: both traces whole, each in its experiment; the gateway span keeps its link.
    client = tracking_client(scene.mlflow.tracking_uri)

    def in_mlflow(trace_id: str, spans: int):
        def ready() -> bool:
            try:
                return len(client.get_trace(trace_id).data.spans) == spans
            except Exception:  # noqa: BLE001 (not there yet)
                return False
        wait_until(f"{trace_id} in MLflow with {spans} spans", ready, WAIT_S,
                   lambda: f"stitch log:\n{tail(stitch.log_path, 30)}\nmlflow log:\n{tail(scene.mlflow.log_path, 20)}")
        return client.get_trace(trace_id)

    mlflow_agent = in_mlflow(agent_id, 3)
    assert mlflow_agent.info.experiment_id == scene.agent_experiment
    assert str(mlflow_agent.info.state) in ("OK", "TraceState.OK")
    mirror = next(s for s in mlflow_agent.data.spans if s.name == f"gateway/{ENDPOINT}")
    assert mirror.get_attribute("mlflow.gateway.linkedTraceId") == gateway_id
    assert mlflow_agent.info.token_usage == TOKEN_USAGE
    mlflow_gateway = in_mlflow(gateway_id, 2)
    assert mlflow_gateway.info.experiment_id == endpoint_experiment

    # Nothing came back round: MLflow's ingest does not export again what Stitch delivered (each
    # span reached Stitch once: 3 of the agent's trace, 2 of the gateway's).
    time.sleep(3)
    assert {t["trace_id"] for t in stitch.search()} == {agent_id, gateway_id}
    assert stitch.metrics().value("stitch_spans_accepted_total") == 5
    assert stitch.metrics().value("stitch_spans_duplicate_total") == 0
