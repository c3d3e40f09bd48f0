"""Dump the trace rows of an MLflow backend store, for comparing two writers of the same spans.

`dump(uri)` reads a database that MLflow created (`sqlite:////abs/path/mlflow.db`,
`postgresql://user@host:port/db`, anything SQLAlchemy opens) and returns

    {"alembic_version": "<revision>",
     "traces": {"<request_id>": {"trace_info": {column: value, ...},
                                 "trace_tags": [row, ...],              # ordered by key
                                 "trace_request_metadata": [row, ...],  # ordered by key
                                 "spans": [row, ...]}}}                 # ordered by span_id

Every column of every row is included, in the table's column order, so that a dump of MLflow's
own ingest (`POST /v1/traces` on `mlflow server`) and a dump of another writer can be compared
with `==` after `normalize`. The tables are reflected, not taken from MLflow's ORM, so this works
against any schema revision and needs only SQLAlchemy (plus the database's driver).

`python mlflow_rows.py URI [--normalize]` prints the dump as JSON.
"""

from __future__ import annotations

import base64
import copy
import datetime
import decimal
import json
import sys
from typing import Any

import sqlalchemy as sa

TRACE_TABLES = ("trace_info", "trace_tags", "trace_request_metadata", "spans")


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a column value (drivers differ: PostgreSQL may return Decimal)."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _rows(conn: sa.Connection, table: sa.Table, order_by: list[str]) -> list[dict[str, Any]]:
    query = sa.select(table).order_by(*(table.c[name] for name in order_by))
    return [{key: _plain(value) for key, value in row._mapping.items()} for row in conn.execute(query)]


def engine_url(uri: str) -> str:
    """`uri` with an explicit driver where SQLAlchemy's default one is missing.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; the interop venv may have only
    psycopg2 (`pip install psycopg2-binary`), so use that when psycopg 3 is not importable.
    """
    if uri.startswith("postgresql://"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            return "postgresql+psycopg2://" + uri[len("postgresql://"):]
    return uri


def dump(uri: str) -> dict[str, Any]:
    """Every trace's rows in the four trace tables of the MLflow database at `uri`."""
    engine = sa.create_engine(engine_url(uri))
    try:
        metadata = sa.MetaData()
        metadata.reflect(bind=engine, only=[*TRACE_TABLES, "alembic_version"])
        t = metadata.tables
        with engine.connect() as conn:
            versions = [row[0] for row in conn.execute(sa.select(t["alembic_version"].c.version_num))]
            traces: dict[str, dict[str, Any]] = {}
            for info in _rows(conn, t["trace_info"], ["request_id"]):
                traces[info["request_id"]] = {
                    "trace_info": info, "trace_tags": [], "trace_request_metadata": [], "spans": [],
                }
            for table, order in (("trace_tags", ["request_id", "key"]),
                                 ("trace_request_metadata", ["request_id", "key"]),
                                 ("spans", ["trace_id", "span_id"])):
                owner = "trace_id" if table == "spans" else "request_id"
                for row in _rows(conn, t[table], order):
                    # Rows whose trace_info is missing would be a broken store; keep them visible.
                    traces.setdefault(row[owner], {"trace_info": None, "trace_tags": [],
                                                   "trace_request_metadata": [], "spans": []})
                    traces[row[owner]][table].append(row)
    finally:
        engine.dispose()
    return {"alembic_version": versions[0] if len(versions) == 1 else versions, "traces": traces}


def normalize(rows: dict[str, Any]) -> dict[str, Any]:
    """A copy of a `dump` with only the values blanked that two correct writers may differ in.

    MLflow's OTLP ingest derives every other value in these tables from the spans themselves
    (trace_info.timestamp_ms is the earliest span start, not the time of writing; there is no
    creation or update timestamp in any of the four tables), so everything else must match exactly,
    including the text of `spans.content` byte for byte (MLflow's span-attribute search runs LIKE
    patterns over that text, so whitespace and escaping matter, not just the JSON it encodes).

    Blanked:
    - `trace_info.db_payload_generation`: MLflow adds 1 per span-writing transaction (it is the
      archival race guard), so it counts batches, not spans: one request of 5 spans gives 1, the
      same spans in two requests give 2. Any value >= 1 is correct for a written trace and becomes
      ">=1"; 0 or NULL (never bumped) is left as is so that it still shows up as a difference.
    - the prefix of the `mlflow.artifactLocation` tag: it is `<experiment artifact_location>/traces/
      <request_id>/artifacts`, and the experiment's artifact location is an absolute path or URI of
      the deployment (the server's --default-artifact-root), not something the writer chooses.
      The prefix becomes "<artifact_location>"; a value of any other shape is left as is.
    """
    out = copy.deepcopy(rows)
    for request_id, trace in out["traces"].items():
        info = trace.get("trace_info")
        if info and isinstance(info.get("db_payload_generation"), int) and info["db_payload_generation"] >= 1:
            info["db_payload_generation"] = ">=1"
        suffix = f"/traces/{request_id}/artifacts"
        for tag in trace["trace_tags"]:
            if tag["key"] == "mlflow.artifactLocation" and str(tag["value"]).endswith(suffix):
                tag["value"] = "<artifact_location>" + suffix
    return out


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1:
        print("usage: python mlflow_rows.py BACKEND_STORE_URI [--normalize]", file=sys.stderr)
        return 2
    result = dump(args[0])
    if "--normalize" in argv:
        result = normalize(result)
    json.dump(result, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
