"""The built binary's start-up and shutdown edges: a destination that cannot open, configuration
values out of range, `db` beside a `destinations:` list, and shutdown within `shutdown_timeout`."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from harness import clean_env, free_port, stitch_binary, stop_process, tail

RUN_TIMEOUT_S = 30.0


def run_stitch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(stitch_binary()), *args], cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def test_a_destination_that_cannot_open_is_named_and_exits_2(tmp_path: Path) -> None:
    # The first destination opens (a store, a disk queue); the third cannot: its parent is a file.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    config = tmp_path / "stitch.yaml"
    config.write_text(f"""
destinations:
  - name: first
    store: {{ path: {tmp_path / "first.db"} }}
  - name: second
    otlp: {{ endpoint: "http://127.0.0.1:{free_port()}/v1/traces" }}
  - name: broken
    store: {{ path: {blocker / "store.db"} }}
""")
    result = run_stitch(["serve", "--config", str(config), "--listen", f"127.0.0.1:{free_port()}",
                         "--queue-dir", str(tmp_path / "queues")], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "destination 'broken'" in result.stderr and "cannot start" in result.stderr, result.stderr
    # The store opened before it was closed again: SQLite removes a WAL database's -wal file when its
    # last connection closes.
    assert (tmp_path / "first.db").exists()
    assert not (tmp_path / "first.db-wal").exists(), sorted(p.name for p in tmp_path.iterdir())


def test_values_out_of_range_are_listed_and_exit_2(tmp_path: Path) -> None:
    result = run_stitch(["serve", "--listen", f"127.0.0.1:{free_port()}", "--db", str(tmp_path / "s.db"),
                         "--late-window", "9999999999s", "--idle-timeout", "99999999999999h", "--max-body-size", "0",
                         "--max-traces=-1"], tmp_path)
    assert result.returncode == 2, result.stderr
    for key in ("late_window", "idle_timeout", "max_body_size", "max_traces"):
        assert f"{key} (flag" in result.stderr, result.stderr
    assert "out of range" in result.stderr
    assert not (tmp_path / "s.db").exists(), "nothing may start with an invalid configuration"


def test_db_beside_destinations_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "stitch.yaml"
    config.write_text(f"destinations:\n  - name: local\n    store: {{ path: {tmp_path / 'a.db'} }}\n")
    result = run_stitch(["serve", "--config", str(config), "--db", str(tmp_path / "b.db"),
                         "--listen", f"127.0.0.1:{free_port()}"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "db (flag --db)" in result.stderr and "destinations" in result.stderr, result.stderr


def test_sigterm_shuts_down_within_the_timeout_and_exits_0(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "stitch.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(stitch_binary()), "serve", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "s.db"),
                                 "--shutdown-timeout", "5s"], cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while b"stitch is ready" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, tail(log)
            time.sleep(0.05)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=RUN_TIMEOUT_S) == 0, tail(log)
        assert time.monotonic() - started < 5, tail(log)
        assert b"stitch stopped" in log.read_bytes()
    finally:
        stop_process(proc)
