"""Stitch's `mlflow_database` destination against real MLflow servers, on SQLite and PostgreSQL.

For each backend two `mlflow server`s run, each on its own new database: the *reference* one ingests
the captured fixtures through its own OTLP endpoint; Stitch writes the same spans (sent to it the way
the services sent them, one request per service) into the *target* database while the second server
runs on it. The rows of the four trace tables must be equal, row by row (`mlflow_rows.dump`), and the
target server's REST API and `MlflowClient` must list and show the traces with all their spans.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests

from harness import FAST_OPTIONS, StitchServer, fixtures_dir, free_port, stitch_binary, tail, wait_until
from mlflow_rows import dump, normalize
from tracking_server import MlflowTrackingServer, tracking_client

#: (the requests Stitch receives, one per service) per fixture trace; MLflow's reference ingest
#: gets the same spans as one request, the root's service first, as Stitch delivers a trace.
SCENARIOS = {
    "tr-3bb6c5d66706eddb63619b9d8070258a": ["01-otelsdk-serviceA-3spans.pb", "02-otelsdk-serviceB-2spans-remote-parent.pb"],
    "tr-6507f72c0238f76e29de51e9d9c6b191": ["04-mlflow-otlpexport-client-root.pb", "05-mlflow-otlpexport-remote-server-2spans.pb"],
    "tr-598223e32c435f75db63479837c1ec4b": ["06-mlflow-otlpexport-dual-client-root-svcname.pb.gz",
                                             "07-mlflow-otlpexport-dual-remote-server-2spans-svcname.pb"],
}


def fixture_bytes(name: str) -> bytes:
    raw = (fixtures_dir() / name).read_bytes()
    return gzip.decompress(raw) if name.endswith(".gz") else raw


class Backend:
    """Two new databases of one kind, with what MLflow and Stitch each call them."""

    def __init__(self, kind: str, workdir: Path, postgres_url: str | None):
        self.kind = kind
        self.workdir = workdir
        self.postgres_url = postgres_url

    def database(self, name: str) -> tuple[str, str]:
        """(MLflow's URI, Stitch's URL) of a new database."""
        if self.kind == "sqlite":
            path = self.workdir / f"{name}.db"
            return f"sqlite:///{path}", f"sqlite:///{path}"
        assert self.postgres_url is not None
        database = f"mlflow_{name}_{uuid.uuid4().hex[:8]}"
        subprocess.run(["psql", self.postgres_url, "-qXc", f"CREATE DATABASE {database}"],
                       check=True, capture_output=True, timeout=60)
        stitch_url = self.postgres_url.replace("/postgres?", f"/{database}?")
        return stitch_url.replace("postgresql://", "postgresql+psycopg2://"), stitch_url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The reference and the target MLflow server of one backend, both running."""
    workdir = tmp_path_factory.mktemp(f"mlflow-db-{request.param}")
    backend = Backend(request.param, workdir, request.getfixturevalue("postgres") if request.param == "postgresql" else None)
    started: list[MlflowTrackingServer] = []
    result = {"backend": backend}
    try:
        for role in ("reference", "target"):
            mlflow_uri, stitch_url = backend.database(role)
            server = MlflowTrackingServer(workdir / role, backend_store_uri=mlflow_uri)
            started.append(server)
            try:
                server.start()
            except RuntimeError as error:
                pytest.fail(str(error), pytrace=False)
            result[role] = {"server": server, "mlflow_uri": mlflow_uri, "stitch_url": stitch_url}
        yield result
    finally:
        for server in started:
            server.stop()


def start_stitch_into(start_stitch, tmp_path: Path, url: str, *options: str) -> StitchServer:
    config = tmp_path / "stitch-mlflow-db.yaml"
    config.write_text(f"""\
destinations:
  - name: mlflowdb
    mlflow_database: {{ url: "{url}" }}
    retry: {{ initial_interval: 200ms, max_interval: 2s }}
""")
    return start_stitch(options=("--config", str(config), "--queue-dir", str(tmp_path / "queues"), *FAST_OPTIONS, *options))


def post(base: str, body: bytes, experiment: str = "0") -> None:
    answer = requests.post(f"{base}/v1/traces", data=body, timeout=60, headers={
        "content-type": "application/x-protobuf", "x-mlflow-experiment-id": experiment})
    assert answer.status_code == 200, answer.text


def unquoted(value: str | None) -> str | None:
    """MLflow 3.17 stores the span type of MLflow's own exporter JSON-quoted (`"TOOL"`); Stitch stores
    it as 3.18 does (`TOOL`), which `span.type = 'TOOL'` filters find."""
    if value and value.startswith('"'):
        return json.loads(value)
    return value


def test_rows_equal_mlflow_own_ingest_and_mlflow_reads_them(servers, start_stitch, tmp_path):
    reference, target = servers["reference"], servers["target"]
    for names in SCENARIOS.values():
        # Protobuf messages concatenated are one message with the repeated fields joined: one request.
        post(reference["server"].tracking_uri, b"".join(fixture_bytes(name) for name in names))

    stitch = start_stitch_into(start_stitch, tmp_path, target["stitch_url"])
    for names in SCENARIOS.values():
        for name in names:
            answer = stitch.post("/v1/traces", fixture_bytes(name), "application/x-protobuf")
            assert answer.status_code == 200, answer.text

    def written() -> bool:
        traces = dump(target["mlflow_uri"])["traces"]
        return all(trace_id in traces and len(traces[trace_id]["spans"]) == len(dump_reference["traces"][trace_id]["spans"])
                   for trace_id in SCENARIOS)

    dump_reference = dump(reference["mlflow_uri"])
    wait_until("Stitch wrote the three traces", written, timeout=30, describe=lambda: tail(stitch.log_path))
    expected = normalize(dump_reference)["traces"]
    actual = normalize(dump(target["mlflow_uri"]))["traces"]
    for trace_id in SCENARIOS:
        want, got = expected[trace_id], actual[trace_id]
        for span in want["spans"]:
            span["type"] = unquoted(span["type"])
        assert got["trace_info"] == want["trace_info"], trace_id
        assert got["trace_tags"] == want["trace_tags"], trace_id
        assert got["trace_request_metadata"] == want["trace_request_metadata"], trace_id
        assert len(got["spans"]) == len(want["spans"])
        for got_span, want_span in zip(got["spans"], want["spans"]):
            assert got_span == want_span, (trace_id, want_span["name"])

    # MLflow's own server on the database Stitch wrote lists and shows them.
    client = tracking_client(target["server"].tracking_uri)
    listed = {trace.info.trace_id: trace for trace in client.search_traces(locations=["0"], max_results=50)}
    for trace_id, names in SCENARIOS.items():
        assert trace_id in listed
        assert str(listed[trace_id].info.state) in ("TraceState.OK", "OK")
        full = client.get_trace(trace_id)
        assert len(full.data.spans) == len(expected[trace_id]["spans"])
        assert {span.span_id for span in full.data.spans} == {span["span_id"] for span in expected[trace_id]["spans"]}
    rest = requests.get(f"{target['server'].tracking_uri}/api/3.0/mlflow/traces/{next(iter(SCENARIOS))}", timeout=30)
    assert rest.status_code == 200, rest.text
    assert stitch.metrics().value("stitch_mlflow_database_spans_written_total", destination="mlflowdb") == sum(
        len(expected[trace_id]["spans"]) for trace_id in SCENARIOS)


def test_late_fragment_merges_and_unknown_experiment_is_a_dead_letter(servers, start_stitch, tmp_path):
    target = servers["target"]
    client = tracking_client(target["server"].tracking_uri)
    experiment = client.create_experiment(f"late-{uuid.uuid4().hex[:8]}")
    stitch = start_stitch_into(start_stitch, tmp_path, target["stitch_url"])
    # A trace id of its own: the fixtures' spans under another trace id (the first 16 bytes after
    # each trace_id field tag are the id; the fixture has one trace).
    first, second = (fixture_bytes(name) for name in SCENARIOS["tr-3bb6c5d66706eddb63619b9d8070258a"])
    old_id = bytes.fromhex("3bb6c5d66706eddb63619b9d8070258a")
    new_id = uuid.uuid4().bytes
    first, second = first.replace(old_id, new_id), second.replace(old_id, new_id)
    request_id = "tr-" + new_id.hex()

    assert stitch.post("/v1/traces", second, "application/x-protobuf",
                       headers={"x-mlflow-experiment-id": experiment}).status_code == 200
    wait_until("the rootless part is written", lambda: request_id in dump(target["mlflow_uri"])["traces"], timeout=30,
               describe=lambda: tail(stitch.log_path))
    part = dump(target["mlflow_uri"])["traces"][request_id]
    assert part["trace_info"]["status"] == "IN_PROGRESS" and len(part["spans"]) == 2
    assert stitch.post("/v1/traces", first, "application/x-protobuf",
                       headers={"x-mlflow-experiment-id": experiment}).status_code == 200

    def merged() -> bool:
        return len(dump(target["mlflow_uri"])["traces"][request_id]["spans"]) == 5

    wait_until("the late root merged", merged, timeout=30, describe=lambda: tail(stitch.log_path))
    whole = dump(target["mlflow_uri"])["traces"][request_id]
    assert whole["trace_info"]["status"] == "OK"
    assert whole["trace_info"]["experiment_id"] == int(experiment)
    assert whole["trace_info"]["db_payload_generation"] == 2
    assert whole["trace_info"]["request_preview"] == '{"question": "what is 2+2?"}'
    assert len(client.get_trace(request_id).data.spans) == 5

    # An experiment that does not exist: nothing written, the trace kept in the dead letters.
    lost_id = uuid.uuid4().bytes
    assert stitch.post("/v1/traces", first.replace(new_id, lost_id), "application/x-protobuf",
                       headers={"x-mlflow-experiment-id": "987654"}).status_code == 200
    wait_until("the trace is refused", lambda: stitch.metrics().value(
        "stitch_mlflow_database_refused_traces_total", destination="mlflowdb") == 1, timeout=30,
        describe=lambda: tail(stitch.log_path))
    assert "tr-" + lost_id.hex() not in dump(target["mlflow_uri"])["traces"]
    assert "MLflow experiment 987654 does not exist" in stitch.log_path.read_text()
    assert any((tmp_path / "queues" / "mlflowdb" / "dead-letters").iterdir())


def test_unknown_schema_revision_is_refused_at_start(tmp_path, servers):
    if servers["backend"].kind != "sqlite":
        pytest.skip("the revision check is the same code on both backends; a SQLite copy is cheap to edit")
    copy = tmp_path / "future.db"
    shutil.copy(Path(servers["target"]["mlflow_uri"].removeprefix("sqlite:///")), copy)
    with sqlite3.connect(copy) as database:
        database.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    config = tmp_path / "stitch-future.yaml"
    config.write_text(f'destinations:\n  - name: future\n    mlflow_database: {{ url: "sqlite:///{copy}" }}\n')
    started = subprocess.run([str(stitch_binary()), "serve", "--listen", f"127.0.0.1:{free_port()}",
                              "--grpc-listen", f"127.0.0.1:{free_port()}", "--config", str(config),
                              "--queue-dir", str(tmp_path / "queues")],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert started.returncode != 0
    output = started.stdout + started.stderr
    assert "ffffffffffff" in output and "3.17.2" in output and "never migrates" in output, output
    # The database is left as it was.
    with sqlite3.connect(copy) as database:
        assert database.execute("SELECT version_num FROM alembic_version").fetchall() == [("ffffffffffff",)]
