"""Fixtures of the interop suite: a running Stitch per test, and the client apps' processes.

Run: `STITCH_BIN=.build/debug/stitch .venv/bin/python -m pytest Tests/interop -q` (scripts/test.sh does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

from harness import FAST_OPTIONS, REPO_ROOT, ServerApp, StitchServer, free_port
from tracking_server import MlflowTrackingServer


@pytest.fixture
def start_stitch(tmp_path: Path) -> Iterator[Callable[..., StitchServer]]:
    """Starts Stitch servers with chosen options (and chosen ports, else free ones); every one is
    stopped (SIGTERM, then SIGKILL) after the test."""
    servers: list[StitchServer] = []

    def start(options: Sequence[str] = FAST_OPTIONS, subcommand: Sequence[str] = ("serve",), port: int | None = None,
              grpc_port: int | None = None, db: str | None = None) -> StitchServer:
        workdir = tmp_path / f"stitch-{len(servers)}"
        workdir.mkdir()
        server = StitchServer(workdir, options=options, subcommand=subcommand, port=port, grpc_port=grpc_port, db=db)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def stitch(start_stitch: Callable[..., StitchServer]) -> StitchServer:
    """A running Stitch with a fresh store and the fast test timeouts (idle 300 ms, max age 5 s)."""
    return start_stitch()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL server (scripts/pg-server.sh: initdb, 127.0.0.1, a free port), started once per
    session and stopped at its end; yields the URL of its `postgres` database."""
    # Not under pytest's temporary root: that is private to root, and the server runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="stitch-interop-pg-"))
    os.chmod(directory, 0o755)
    script = REPO_ROOT / "scripts" / "pg-server.sh"
    started = subprocess.run([str(script), "start", str(directory / "pg"), str(free_port())],
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, f"PostgreSQL did not start: {started.stderr}"
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(script), "stop", str(directory / "pg")], capture_output=True, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def stitch_on_each_store(request: pytest.FixtureRequest, start_stitch: Callable[..., StitchServer]) -> StitchServer:
    """A running Stitch as `stitch`, once on its SQLite store and once on a new PostgreSQL database."""
    if request.param == "sqlite":
        return start_stitch()
    base = request.getfixturevalue("postgres")
    name = f"interop_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", base, "-qXc", f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)
    return start_stitch(db=base.replace("/postgres?", f"/{name}?"))


@pytest.fixture
def start_server_app(tmp_path: Path) -> Iterator[Callable[..., ServerApp]]:
    """Starts server apps from `apps/` (they exit by themselves; any still running is stopped after the test)."""
    apps: list[ServerApp] = []

    def start(script: str, env: dict[str, str], requests_to_serve: int = 1) -> ServerApp:
        app = ServerApp(script, env, tmp_path, requests_to_serve)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture(scope="session")
def mlflow_tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowTrackingServer]:
    """A real `mlflow server` (SQLite backend, 127.0.0.1), started once per session (~30 s) and
    always stopped at its end."""
    server = MlflowTrackingServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
