"""Process and HTTP helpers for the interop suite.

Runs the real `stitch` binary (env STITCH_BIN, default `.build/debug/stitch`) on a free 127.0.0.1
port with a temporary store, and real OpenTelemetry / MLflow client processes (`apps/`) against it.
Every process started here has a time limit, listens on 127.0.0.1 only, and is stopped by the
fixture that started it. They stay in pytest's process group, so that a runner that times the
suite out (scripts/test.sh uses timeout(1)) ends them along with pytest.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pytest
import requests

INTEROP_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEROP_DIR.parent.parent
APPS_DIR = INTEROP_DIR / "apps"

#: The longest any client process of a test may run.
PROCESS_TIMEOUT_S = 90.0
#: How long a stored trace may take to appear (idle timeout 300 ms plus export at process exit).
TRACE_WAIT_S = 20.0
#: Per HTTP request to Stitch.
HTTP_TIMEOUT_S = 10.0

#: Environment variables a parent shell may have set that would change what the processes here do.
_INHERITED_PREFIXES = ("OTEL_", "STITCH_", "MLFLOW_")

# Options that keep tests fast (see the README: a closed trace is released after idle_timeout).
FAST_OPTIONS = ("--idle-timeout", "300ms", "--max-trace-age", "5s", "--log-level", "debug")


def clean_env(**overrides: str) -> dict[str, str]:
    """The current environment without OTEL_*/STITCH_*/MLFLOW_* settings, plus `overrides`.

    MLflow's usage telemetry is switched off: the clients must talk to nothing but 127.0.0.1.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


def stitch_binary() -> Path:
    """The binary under test: env STITCH_BIN, else the debug build in this checkout."""
    # Absolute: the processes run in their own working directories.
    path = Path(os.environ.get("STITCH_BIN") or REPO_ROOT / ".build" / "debug" / "stitch").resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"stitch binary not found at {path}: build it (swift build) or set STITCH_BIN", pytrace=False)
    return path


def fixtures_dir() -> Path:
    """The captured OTLP requests kept in the repository: `Tests/Fixtures/mlflow-otlp`."""
    path = REPO_ROOT / "Tests" / "Fixtures" / "mlflow-otlp"
    if not (path / "SHA256SUMS").is_file() or not any(path.glob("*.pb")):
        pytest.fail(f"the captured fixtures are missing from {path} (a broken checkout?)", pytrace=False)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mlflow_trace_id(otel_trace_id_hex: str) -> str:
    """MLflow's id for an OTLP trace id: `tr-` + 32 lowercase hex digits."""
    return "tr-" + otel_trace_id_hex.lower().rjust(32, "0")


def b64_to_hex(value: str | None) -> str | None:
    """MLflow's Trace JSON holds span ids as base64 of the raw bytes; this gives lowercase hex."""
    if not value:
        return None
    return base64.b64decode(value).hex()


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it is still running after `timeout`; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class StitchServer:
    """One `stitch` server process with its own store, on a free 127.0.0.1 port."""

    def __init__(self, workdir: Path, options: Sequence[str] = FAST_OPTIONS, subcommand: Sequence[str] = ("serve",),
                 port: int | None = None, grpc_port: int | None = None, db: str | None = None):
        self.binary = stitch_binary()
        self.workdir = workdir
        #: The store: a SQLite file in the work directory, or the caller's postgresql:// URL.
        self.db = db or workdir / "stitch-data" / "stitch.db"
        self.log_path = workdir / "stitch.log"
        self.options = list(options)
        self.subcommand = list(subcommand)
        #: A port chosen by the caller (e.g. one another process forwards to), else a free one per start.
        self.fixed_port = port
        self.port = 0
        #: The OTLP/gRPC receiver's port: the caller's, else a free one per start (never 4317: tests
        #: run side by side).
        self.fixed_grpc_port = grpc_port
        self.grpc_port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_endpoint(self) -> str:
        return f"{self.base_url}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        """What OTLP/gRPC clients are pointed at (`http://host:port`, no path)."""
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self, ready_timeout: float = 30.0) -> "StitchServer":
        """Starts the server and waits for `GET /healthz` to answer 200.

        The port is free when chosen but another process may take it before Stitch binds it: when
        Stitch exits with an error before it is ready, it is tried again on another port (not with a
        fixed port).
        """
        failures = []
        fixed = self.fixed_port or self.fixed_grpc_port
        for _ in range(1 if fixed else 3):
            self.port = self.fixed_port or free_port()
            self.grpc_port = self.fixed_grpc_port or free_port()
            # With a configuration that lists destinations the stores are named there (Stitch refuses a
            # --db beside them): the harness's own store flag is left out then.
            store = [] if self._config_lists_destinations() else ["--db", str(self.db)]
            args = [str(self.binary), *self.subcommand, "--listen", f"127.0.0.1:{self.port}",
                    "--grpc-listen", f"127.0.0.1:{self.grpc_port}", *store, *self.options]
            with open(self.log_path, "ab") as log:
                log.write(f"$ {' '.join(args)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    args, cwd=self.workdir, env=clean_env(), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT,
                )
            if self._wait_ready(ready_timeout):
                return self
            status = self.proc.poll()
            stop_process(self.proc, timeout=5)
            if status is None:
                failures.append(f"no 200 from /healthz within {ready_timeout} s")
                break
            failures.append(f"exit status {status}")
            if status == 0:
                break
        pytest.fail(f"stitch did not become ready ({', '.join(failures)}); log:\n{tail(self.log_path)}", pytrace=False)

    def _config_lists_destinations(self) -> bool:
        options = list(self.options)
        if "--config" not in options:
            return False
        config = Path(options[options.index("--config") + 1])
        return any(line.startswith("destinations:") for line in config.read_text().splitlines())

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (Stitch flushes what it buffers and exits 0), SIGKILL after `timeout`."""
        return stop_process(self.proc, timeout) if self.proc else 0

    # ---- HTTP ---------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.base_url + path, params=params or None, timeout=HTTP_TIMEOUT_S)

    def post(self, path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> requests.Response:
        all_headers = {"Content-Type": content_type, **(headers or {})}
        return requests.post(self.base_url + path, data=body, headers=all_headers, timeout=HTTP_TIMEOUT_S)

    def metrics(self) -> "Metrics":
        """`GET /metrics`, parsed."""
        response = self.get("/metrics")
        assert response.status_code == 200, f"GET /metrics: {response.status_code} {response.text[:500]}"
        return Metrics.parse(response.text)

    def api_trace(self, trace_id: str) -> dict | None:
        """`GET /api/v1/traces/{id}`: MLflow's Trace JSON, or None while it is not stored (404)."""
        response = self.get(f"/api/v1/traces/{trace_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, f"GET /api/v1/traces/{trace_id}: {response.status_code} {response.text[:500]}"
        return response.json()

    def search(self, **params: Any) -> list[dict]:
        """Every TraceInfo that `GET /api/v1/traces` returns for `params`, following page tokens."""
        infos: list[dict] = []
        for _ in range(100):
            response = self.get("/api/v1/traces", **params)
            assert response.status_code == 200, f"GET /api/v1/traces: {response.status_code} {response.text[:500]}"
            page = response.json()
            infos.extend(page.get("traces") or [])
            token = page.get("next_page_token")
            if not token:
                return infos
            params = {**params, "page_token": token}
        raise AssertionError("GET /api/v1/traces: more than 100 pages")

    def wait_for_trace(self, trace_id: str, until: Callable[[dict], bool] = lambda _: True, timeout: float = TRACE_WAIT_S) -> dict:
        """Polls the HTTP API until the trace is stored and `until(trace_json)` holds."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"stitch exited with {self.proc.returncode}; log:\n{tail(self.log_path)}"
            last = self.api_trace(trace_id)
            if last is not None and until(last):
                return last
            time.sleep(0.1)
        summary = "not stored" if last is None else f"stored with spans {span_names(last)}, info {json.dumps(last.get('info'))[:800]}"
        raise AssertionError(f"trace {trace_id} not as expected after {timeout} s: {summary}\nstitch log:\n{tail(self.log_path)}")

    # ---- CLI ----------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Runs `stitch ARGS --db <this server's store>` and returns its result (exit status not checked)."""
        return subprocess.run(
            [str(self.binary), *args, "--db", str(self.db)], cwd=self.workdir, env=clean_env(),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )

    def cli_ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.returncode == 0, f"stitch {' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}"
        return result.stdout

    def cli_trace_json(self, trace_id: str) -> dict:
        """`stitch traces get ID --json`, parsed."""
        return json.loads(self.cli_ok("traces", "get", trace_id, "--json"))


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """Samples of a Prometheus text exposition: (name, labels) → value."""

    def __init__(self, samples: dict[tuple[str, frozenset], float]):
        self.samples = samples

    @classmethod
    def parse(cls, text: str) -> "Metrics":
        samples: dict[tuple[str, frozenset], float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            name, _, labels = series.partition("{")
            samples[(name, frozenset(_LABEL.findall(labels)))] = float(value)
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        """The sum over every series of `name` whose labels include `labels` (0 when there is none)."""
        wanted = set(labels.items())
        return sum(value for (series, have), value in self.samples.items() if series == name and wanted <= have)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def wait_until(what: str, condition: Callable[[], bool], timeout: float, describe: Callable[[], str] = lambda: "") -> None:
    """Polls `condition` every 100 ms until it holds; fails with `what` (and `describe()`) after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}. {describe()}")


# ---- MLflow Trace JSON ---------------------------------------------------------------------------


def spans_of(trace_json: dict) -> list[dict]:
    return (trace_json.get("data") or {}).get("spans") or []


def span_names(trace_json: dict) -> list[str]:
    return sorted(span["name"] for span in spans_of(trace_json))


def has_spans(*names: str) -> Callable[[dict], bool]:
    """A `wait_for_trace` condition: every one of `names` is among the trace's spans."""
    return lambda trace_json: set(names) <= set(span_names(trace_json))


def parent_names(trace_json: dict) -> dict[str, str | None]:
    """Span name → its parent's span name (None for a root), from the raw Trace JSON."""
    spans = spans_of(trace_json)
    by_id = {b64_to_hex(span["span_id"]): span["name"] for span in spans}
    return {span["name"]: by_id.get(b64_to_hex(span.get("parent_span_id")), "<missing>" if span.get("parent_span_id") else None) for span in spans}


def tag_list(info: dict, key: str) -> set[str]:
    """A comma-separated tag (such as `stitch.services`) as a set."""
    value = (info.get("tags") or {}).get(key) or ""
    return {part.strip() for part in value.split(",") if part.strip()}


# ---- client processes ----------------------------------------------------------------------------


def otel_env(stitch: StitchServer, service_name: str, endpoint: str | None = None, grpc: bool = False,
             **extra: str) -> dict[str, str]:
    """What a user sets to point an OpenTelemetry (or MLflow) process at Stitch: OTLP/HTTP, or with
    `grpc` only the gRPC endpoint and no protocol variable (gRPC is then the exporters' default)."""
    if grpc:
        return clean_env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint or stitch.grpc_endpoint,
                         OTEL_SERVICE_NAME=service_name, **extra)
    return clean_env(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint or stitch.traces_endpoint,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_SERVICE_NAME=service_name,
        **extra,
    )


@dataclass
class AppResult:
    stdout: str
    stderr: str

    def value(self, key: str) -> str:
        """The value of the app's `KEY value` output line."""
        for line in self.stdout.splitlines():
            if line.startswith(key + " "):
                return line.split(" ", 1)[1].strip()
        raise AssertionError(f"no '{key}' line in the app's output:\n{self.stdout}\n{self.stderr}")


def run_app(script: str, args: Iterable[str], env: dict[str, str], cwd: Path, timeout: float = PROCESS_TIMEOUT_S) -> AppResult:
    """Runs `apps/<script>` to completion in this venv's Python; fails the test if it fails."""
    result = subprocess.run(
        [sys.executable, str(APPS_DIR / script), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, f"{script} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return AppResult(result.stdout, result.stderr)


class ServerApp:
    """A server app from `apps/` that prints `LISTENING <port>`, serves a set number of requests on
    127.0.0.1 and exits by itself (flushing its spans on the way out)."""

    def __init__(self, script: str, env: dict[str, str], cwd: Path, requests_to_serve: int = 1):
        self.script = script
        self.log_path = cwd / f"{Path(script).stem}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(APPS_DIR / script), "--requests", str(requests_to_serve), "--deadline", str(PROCESS_TIMEOUT_S)],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
        )
        self.port = self._read_port(timeout=60.0)
        # Drain the rest of stdout so that the app never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        buffered = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buffered += chunk
                for line in buffered.decode(errors="replace").splitlines():
                    if line.startswith("LISTENING "):
                        return int(line.split()[1])
            elif self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"{self.script} did not start listening; output: {buffered!r}\n{tail(self.log_path)}")

    def wait(self, timeout: float = 30.0) -> int:
        """Waits for the app to exit by itself (after its requests); fails if it exits non-zero."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.script} did not exit by itself within {timeout} s\n{tail(self.log_path)}")
        assert status == 0, f"{self.script} exited {status}\n{tail(self.log_path)}"
        return status

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)
        self._log.close()
