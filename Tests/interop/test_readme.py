"""The configuration examples of README.md are what the binary accepts: each ```yaml block starts a
Stitch with exactly the destinations it lists (the network addresses in them need not answer; an
MLflow database is created for an `mlflow_database` example)."""

from __future__ import annotations

import re

import pytest

from harness import REPO_ROOT

README = REPO_ROOT / "README.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)


def destination_names(block: str) -> list[str]:
    return re.findall(r"^  - name: ([\w-]+)", block, flags=re.MULTILINE)


def test_readme_has_configuration_examples():
    assert len(yaml_blocks()) >= 3  # Send to MLflow, Chain in front of Jaeger, Sidecar


@pytest.mark.parametrize("index", range(len(yaml_blocks())))
def test_readme_configuration_example_starts(index, start_stitch, tmp_path):
    block = yaml_blocks()[index]
    if "mlflow_database:" in block:
        # Stitch opens an MLflow database at start: one MLflow created, in place of the example's.
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        SqlAlchemyStore(uri, str(tmp_path / "mlruns")).engine.dispose()
        block = re.sub(r"(mlflow_database:\s*\n\s*url: )\S+", lambda m: m.group(1) + uri, block)
    config = tmp_path / "example.yaml"
    config.write_text(block)
    # The harness's --listen, --db and --queue-dir flags override the example's addresses and paths.
    stitch = start_stitch(options=("--config", str(config), "--queue-dir", str(tmp_path / "queues"), "--log-level", "info"))
    log = stitch.log_path.read_text()  # ready: every destination has been logged
    started = set(re.findall(r" destination=([\w-]+) target=", log))
    assert started == set(destination_names(block)), log


def test_readme_forward_flag_adds_an_otlp_destination(start_stitch):
    stitch = start_stitch(options=("--forward", "http://jaeger:4318", "--log-level", "info"))
    log = stitch.log_path.read_text()
    assert re.search(r" destination=forward-1 target=OTLP/HTTP http://jaeger:4318/v1/traces ", log), log
    assert re.search(r" destination=store target=store ", log), log  # the embedded store stays
