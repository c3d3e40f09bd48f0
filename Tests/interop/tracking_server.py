"""A real MLflow tracking server (`mlflow server`, SQLite backend) on a free 127.0.0.1 port.

Used by the session fixture `mlflow_tracking` (conftest.py) and by `measure_mlflow.py`. Starting it
takes about 30 s (database migrations, then uvicorn), so the suite starts it once per session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from harness import clean_env, free_port, stop_process, tail

#: How long `mlflow server` may take until `GET /health` answers 200 (about 30 s on an idle
#: machine; three times that while other builds share its two cores).
READY_TIMEOUT_S = 180.0


def mlflow_executable() -> Path:
    """The `mlflow` command of the Python running this (the venv's)."""
    return Path(sys.executable).parent / "mlflow"


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so split after ")".
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(0), []):
            found.append(child)
            pending.append(child)
    return found


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


class MlflowTrackingServer:
    """`mlflow server --backend-store-uri sqlite:///<dir>/mlflow.db` with one uvicorn worker.

    `mlflow server` runs uvicorn as a child process and forwards SIGTERM to it; `stop` also kills
    whatever of its process tree is left after that.
    """

    def __init__(self, workdir: Path, workers: int = 1, backend_store_uri: str | None = None,
                 env: dict[str, str] | None = None):
        self.workdir = workdir
        #: More environment for the server process (e.g. the AI Gateway's and OTLP export settings).
        self.env = env or {}
        self.workers = workers
        #: SQLite in `workdir` unless given (e.g. `postgresql+psycopg2://…`).
        self.backend_store_uri = backend_store_uri or f"sqlite:///{workdir / 'mlflow.db'}"
        self.log_path = workdir / "mlflow-server.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = READY_TIMEOUT_S) -> "MlflowTrackingServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = [
            str(mlflow_executable()), "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", self.backend_store_uri,
            "--default-artifact-root", str(self.workdir / "artifacts"), "--workers", str(self.workers),
        ]
        self._log = open(self.log_path, "ab")
        self._log.write(f"$ {' '.join(args)}\n".encode())
        self._log.flush()
        # No background job runner: the tests need the tracking API only.
        env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", **self.env)
        self.proc = subprocess.Popen(args, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while time.monotonic() - started < ready_timeout:
            if self.proc.poll() is not None:
                break
            try:
                if requests.get(f"{self.tracking_uri}/health", timeout=2).status_code == 200:
                    self.startup_seconds = time.monotonic() - started
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.25)
        status = self.proc.poll()
        self.stop()
        raise RuntimeError(f"mlflow server not ready within {ready_timeout} s (exit status {status}); "
                           f"log:\n{tail(self.log_path)}")

    def stop(self) -> None:
        """SIGTERM (forwarded to uvicorn), then SIGKILL for anything of the tree still running."""
        if self.proc is None:
            return
        tree = {pid: _cmdline(pid) for pid in descendants(self.proc.pid)}
        stop_process(self.proc, timeout=20)
        for pid, cmdline in tree.items():
            # Only the very process seen in the tree (not one that took over its id since).
            if cmdline and _cmdline(pid) == cmdline:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self._log:
            self._log.close()
            self._log = None


def tracking_client(tracking_uri: str):
    """An `MlflowClient` for `tracking_uri`, with MLflow's usage telemetry off (this process talks to
    127.0.0.1 only)."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)
