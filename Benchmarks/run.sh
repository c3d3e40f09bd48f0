#!/usr/bin/env bash
# Stitch benchmark: one machine, one go, the same generated traffic (stitch-load, --seed 1) for every system.
# Prints the results table and the growth table in Markdown (also saved to $OUT/results.md).
#
# Usage: Benchmarks/run.sh
# Env:   QUICK=1          smaller runs (a minute or two; numbers are noisier)
#        SKIP_MLFLOW=1    leave out the MLflow rows (MLflow's own ingest, and the mlflow_database destination)
#        SKIP_GROWTH=1    leave out the growth table
#        SKIP_HELD=1      leave out the held-memory row (Benchmarks/held.sh, ~1.2 GiB of 8 MiB requests)
#        SKIP_POSTGRES=1  leave out the rows on PostgreSQL (scripts/pg-server.sh): Stitch's store, MLflow's database
#        MLFLOW=path      the mlflow executable (default: .venv/bin/mlflow, else /work/venv/bin/mlflow)
#        OUT=dir          where logs and JSON results go (default: a temporary directory, kept)
#        KEEP_STORES=1    keep each run's SQLite store in $OUT too (a full run writes ~4 GiB of them)
#
# Every process runs on 127.0.0.1 and is stopped at the end (trap). A full run takes about 6-9 minutes on
# 2 cores; stitch-load runs on the same machine as the server it measures.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=${QUICK:-0}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/stitch-bench.XXXXXX")}
mkdir -p "$OUT"
SEED=1

# Sizes of each row (QUICK=1 divides them).
scale() { if [[ "$QUICK" == 1 ]]; then echo $(( $1 / ${2:-5} )); else echo "$1"; fi; }
ACCEPT_TRACES=$(scale 30000)      # 600k spans, sent as fast as accepted, all held in memory
E2E_TRACES=$(scale 20000)         # 400k spans into SQLite
MLFLOW_TRACES=100                 # 2,000 spans (MLflow ingests a few hundred spans/s)
MLFLOW_SECONDS=20
GROWTH_SPANS=$(scale 200000)

# ---------------------------------------------------------------------------------------------------------
PIDS=()
cleanup() {
    if [[ -n "${PG_DIR:-}" ]]; then scripts/pg-server.sh stop "$PG_DIR" 2>/dev/null || true; fi
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            # mlflow runs in its own process group (setsid): stop the whole group.
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    sleep 0.5
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
    done
    if [[ "${KEEP_STORES:-0}" != 1 ]]; then rm -f "$OUT"/*.db "$OUT"/*.db-wal "$OUT"/*.db-shm; fi
}
trap cleanup EXIT INT TERM

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
jget() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); v = d
for k in sys.argv[2].split("."): v = v.get(k) if isinstance(v, dict) else None
if isinstance(v, dict): v = ", ".join(f"{k}: {n}" for k, n in sorted(v.items())) or "none"
print("" if v is None else v)' "$1" "$2"; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
now_ns() { date +%s%N; }
fmt_int() { if [[ -z "${1:-}" ]]; then echo "—"; else python3 -c 'import sys; print(f"{round(float(sys.argv[1])):,}")' "$1"; fi; }
fmt() { python3 -c 'import sys; print(f"{float(sys.argv[1]):.{int(sys.argv[2])}f}")' "${1:-0}" "${2:-1}"; }
calc() { python3 -c "print($1)"; }
metric() { curl -sf "http://127.0.0.1:$STITCH_PORT/metrics" | awk -v n="$1" '$1 == n || index($1, n"{") == 1 { print $2; exit }'; }

# start_stitch NAME [flags…]: starts a release Stitch on free ports (OTLP/HTTP and OTLP/gRPC) with a new
# store; sets STITCH_PID, STITCH_PORT, STITCH_GRPC_PORT, STITCH_DB, STARTUP_MS (spawn → first 200 from /healthz).
start_stitch() {
    local name=$1; shift
    STITCH_PORT=$(free_port)
    STITCH_GRPC_PORT=$(free_port)
    # STORE_URL (a postgresql:// URL) instead of a new SQLite file; or CONFIG (a file with a destinations
    # list) and CHECK_DB (the database the e2e check reads: what the destination writes).
    local store_flags=()
    if [[ -n "${CONFIG:-}" ]]; then
        STITCH_DB=$CHECK_DB
        store_flags=(--config "$CONFIG" --queue-dir "$OUT/$name.queues")
    else
        STITCH_DB="${STORE_URL:-$OUT/$name.db}"
        rm -f "$STITCH_DB" "$STITCH_DB-wal" "$STITCH_DB-shm"
        store_flags=(--db "$STITCH_DB")
    fi
    local t0; t0=$(now_ns)
    "$BIN/stitch" serve --listen "127.0.0.1:$STITCH_PORT" --grpc-listen "127.0.0.1:$STITCH_GRPC_PORT" \
        "${store_flags[@]}" --log-level warning "$@" \
        >"$OUT/$name.stitch.log" 2>&1 &
    STITCH_PID=$!
    PIDS+=("$STITCH_PID")
    until curl -sf -o /dev/null "http://127.0.0.1:$STITCH_PORT/healthz"; do
        if ! kill -0 "$STITCH_PID" 2>/dev/null; then log "stitch ($name) died:"; cat "$OUT/$name.stitch.log" >&2; exit 1; fi
        if (( ($(now_ns) - t0) > 30000000000 )); then log "stitch ($name) not healthy after 30 s"; exit 1; fi
        sleep 0.002
    done
    STARTUP_MS=$(( ($(now_ns) - t0) / 1000000 ))
}

stop_stitch() {
    kill -TERM "$STITCH_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$STITCH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$STITCH_PID" 2>/dev/null || true
    wait "$STITCH_PID" 2>/dev/null || true
    if [[ "${KEEP_STORES:-0}" != 1 && -z "${CONFIG:-}" ]]; then rm -f "$STITCH_DB" "$STITCH_DB-wal" "$STITCH_DB-shm"; fi
}

# load NAME MODE [flags…]: runs stitch-load against the current Stitch, output in $OUT/NAME.{txt,json}
# (with --protocol grpc among the flags, against its gRPC port).
load() {
    local name=$1 mode=$2; shift 2
    local db_flag=() port=$STITCH_PORT
    if [[ "$mode" == e2e ]]; then db_flag=(--db "$STITCH_DB"); fi
    if [[ " $* " == *" --protocol grpc "* ]]; then port=$STITCH_GRPC_PORT; fi
    "$BIN/stitch-load" "$mode" --target "http://127.0.0.1:$port" --seed "$SEED" "${db_flag[@]}" \
        --json-out "$OUT/$name.json" "$@" | tee "$OUT/$name.txt" >&2
}

# ---------------------------------------------------------------------------------------------------------
log "building (release)…"
swift build -c release --product stitch 2>&1 | tail -1 >&2
swift build -c release --product stitch-load 2>&1 | tail -1 >&2
swift build -c release --product stitch-bench-decode 2>&1 | tail -1 >&2
BIN=$(swift build -c release --show-bin-path)
MACHINE="$(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), $(swift --version 2>/dev/null | head -1 | sed 's/ (.*//')"
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
log "machine: $MACHINE; revision $REVISION; results in $OUT"

# --- decode ----------------------------------------------------------------------------------------------
log "decode micro-benchmark…"
"$BIN/stitch-bench-decode" --seconds "$( [[ $QUICK == 1 ]] && echo 0.5 || echo 1.5 )" --json-out "$OUT/decode.json" | tee "$OUT/decode.txt" >&2
DECODE_WIRE=$(jget "$OUT/decode.json" wire_spans_per_second)
DECODE_PB=$(jget "$OUT/decode.json" swift_protobuf_spans_per_second)
DECODE_DETAIL=$(jget "$OUT/decode.json" detail_spans_per_second)
DECODE_BYTES=$(jget "$OUT/decode.json" wire_bytes_per_second)

# --- accept + footprint --------------------------------------------------------------------------------
# The receiver alone: a long idle timeout keeps every trace buffered (nothing is released to the store while
# the burst runs), and limits are raised so that the burst is answered 200. The same run gives the memory
# held per buffered span.
RECEIVER_FLAGS=(--idle-timeout 10m --max-trace-age 20m --max-buffered-bytes 4GiB --max-traces 1000000)
# One unmeasured burst first, on an instance thrown away: on a VM that hands freed memory back to its host,
# the first burst after a quiet spell measures the host faulting in ~700 MB, not the receiver (accept
# 300–400k spans/s cold vs 550–750k warm, same binary).
log "accept: warm-up burst (not measured)…"
start_stitch warmup "${RECEIVER_FLAGS[@]}"
load warmup accept --traces "$ACCEPT_TRACES" --connections 4 >/dev/null 2>&1 || true
kill -KILL "$STITCH_PID" 2>/dev/null || true
wait "$STITCH_PID" 2>/dev/null || true
sleep 1
log "accept: $ACCEPT_TRACES traces as fast as accepted…"
start_stitch accept "${RECEIVER_FLAGS[@]}"
STARTUPS=("$STARTUP_MS")
sleep 1
IDLE_RSS_KIB=$(kib "$STITCH_PID" VmRSS)
load accept accept --traces "$ACCEPT_TRACES" --connections 4
ACCEPT_SPANS=$(jget "$OUT/accept.json" spans_per_second)
ACCEPT_RPS=$(jget "$OUT/accept.json" requests_per_second)
ACCEPT_P50=$(jget "$OUT/accept.json" latency_p50_ms)
ACCEPT_P99=$(jget "$OUT/accept.json" latency_p99_ms)
ACCEPT_NON2XX=$(jget "$OUT/accept.json" non_2xx)
sleep 1
RSS_AFTER_KIB=$(kib "$STITCH_PID" VmRSS)
LOAD_HWM_KIB=$(kib "$STITCH_PID" VmHWM)
BUFFERED_BYTES=$(metric stitch_buffered_bytes); BUFFERED_BYTES=${BUFFERED_BYTES:-0}
BUFFERED_SPANS=$(metric stitch_buffered_spans); BUFFERED_SPANS=${BUFFERED_SPANS:-0}
HELD_PER_SPAN=$(calc "($RSS_AFTER_KIB - $IDLE_RSS_KIB) * 1024 / max(1, $BUFFERED_SPANS)")
ENCODED_PER_SPAN=$(calc "$BUFFERED_BYTES / max(1, $BUFFERED_SPANS)")
HELD_RATIO=$(calc "($RSS_AFTER_KIB - $IDLE_RSS_KIB) * 1024 / max(1, $BUFFERED_BYTES)")
# Its 600k buffered spans are not needed: a graceful stop would spend the next seconds writing them into
# SQLite (and the kernel flushing them) while the latency row below runs. Kill it, let the disk settle.
kill -KILL "$STITCH_PID" 2>/dev/null || true
wait "$STITCH_PID" 2>/dev/null || true
sync
sleep 2

# The accept row's traffic over OTLP/gRPC (stitch-load's raw HTTP/2 sender, one call in flight per
# connection), on a new instance; the HTTP figure above is the comparison.
log "accept over OTLP/gRPC: $ACCEPT_TRACES traces as fast as accepted…"
start_stitch accept-grpc "${RECEIVER_FLAGS[@]}"
load accept-grpc accept --traces "$ACCEPT_TRACES" --connections 4 --protocol grpc
GRPC_SPANS=$(jget "$OUT/accept-grpc.json" spans_per_second)
GRPC_P50=$(jget "$OUT/accept-grpc.json" latency_p50_ms)
GRPC_P99=$(jget "$OUT/accept-grpc.json" latency_p99_ms)
GRPC_NOTOK=$(jget "$OUT/accept-grpc.json" non_2xx)
kill -KILL "$STITCH_PID" 2>/dev/null || true
wait "$STITCH_PID" 2>/dev/null || true
sync
sleep 2

# p99 latency at half of the peak rate (latency counted from when each request was due).
HALF_RATE=$(calc "int($ACCEPT_SPANS / 2)")
# The same traffic as the accept row, at half its rate: the server ends up holding what it held at the peak
# (a longer run at this rate would measure the kernel handing out fresh memory for every span held, not the
# receiver: with a 10-minute idle timeout nothing is released).
HALF_TRACES=$ACCEPT_TRACES
log "latency at half of the peak rate ($HALF_RATE spans/s)…"
start_stitch half "${RECEIVER_FLAGS[@]}"
STARTUPS+=("$STARTUP_MS")
load half accept --traces "$HALF_TRACES" --rate "$HALF_RATE" --connections 8
HALF_P50=$(jget "$OUT/half.json" latency_p50_ms)
HALF_P99=$(jget "$OUT/half.json" latency_p99_ms)
HALF_MAX=$(jget "$OUT/half.json" latency_max_ms)
HALF_ACHIEVED=$(jget "$OUT/half.json" spans_per_second)
stop_stitch

# --- end-to-end ------------------------------------------------------------------------------------------
# Default limits: when the store falls behind, Stitch answers 503 + Retry-After and stitch-load retries, as
# an SDK does (--max-attempts high: the timeout bounds the run).
log "end-to-end: $E2E_TRACES traces into SQLite (default limits, idle timeout 2s)…"
start_stitch e2e --idle-timeout 2s
STARTUPS+=("$STARTUP_MS")
load e2e e2e --traces "$E2E_TRACES" --connections 4 --duplicate-rate 0.01 --timeout 420 --max-attempts 100000 || true
E2E_SPANS=$(jget "$OUT/e2e.json" e2e_spans_per_second)
E2E_STEADY=$(jget "$OUT/e2e.json" steady_commit_spans_per_second)
E2E_EXACT=$(jget "$OUT/e2e.json" traces_exact)
E2E_TOTAL=$(jget "$OUT/e2e.json" traces_total)
E2E_SECONDS=$(jget "$OUT/e2e.json" committed_seconds)
E2E_NON2XX=$(jget "$OUT/e2e.json" non_2xx)
E2E_HWM_KIB=$(kib "$STITCH_PID" VmHWM)
# Idle again: after a whole quiet interval (5 s) Stitch frees the store's page caches and trims its heap.
sleep 12
E2E_IDLE_RSS_KIB=$(kib "$STITCH_PID" VmRSS)
stop_stitch
STARTUP_MS_MEDIAN=$(printf '%s\n' "${STARTUPS[@]}" | sort -n | sed -n 2p)

# --- end-to-end into PostgreSQL --------------------------------------------------------------------------
# The same traffic into the store on a local PostgreSQL 15 (fsync off, as for a benchmark server; Stitch's
# writes still commit one transaction per batch), right after the SQLite row.
PG_SPANS=""
if [[ "${SKIP_POSTGRES:-0}" != 1 ]]; then
    PG_DIR="$OUT/postgres"
    PG_PORT=$(free_port)
    PG_URL=$(scripts/pg-server.sh start "$PG_DIR" "$PG_PORT")
    psql "$PG_URL" -qXc "CREATE DATABASE stitch_e2e" >/dev/null
    log "end-to-end: $E2E_TRACES traces into PostgreSQL…"
    STORE_URL="${PG_URL/\/postgres\?//stitch_e2e?}" start_stitch e2e-postgres --idle-timeout 2s
    load e2e-postgres e2e --traces "$E2E_TRACES" --connections 4 --duplicate-rate 0.01 --timeout 420 --max-attempts 100000 || true
    PG_SPANS=$(jget "$OUT/e2e-postgres.json" e2e_spans_per_second)
    PG_STEADY=$(jget "$OUT/e2e-postgres.json" steady_commit_spans_per_second)
    PG_EXACT=$(jget "$OUT/e2e-postgres.json" traces_exact)
    PG_TOTAL=$(jget "$OUT/e2e-postgres.json" traces_total)
    PG_NON2XX=$(jget "$OUT/e2e-postgres.json" non_2xx)
    stop_stitch
fi

# --- held memory -----------------------------------------------------------------------------------------
# Small spans that outlive their 8 MiB requests (one never-closing span + a closed 1,000-span trace each).
HELD=""
if [[ "${SKIP_HELD:-0}" != 1 ]]; then
    log "held memory: $(( QUICK == 1 ? 30 : 150 )) requests of 8 MiB, one never-closing span each…"
    HELD=$(REQUESTS=$(( QUICK == 1 ? 30 : 150 )) OUT="$OUT" Benchmarks/held.sh "$BIN" | tee "$OUT/held.txt")
fi
held() { tr ' ' '\n' <<<"$HELD" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

# --- MLflow, and Stitch writing into MLflow's database ------------------------------------------------------
MLFLOW_BIN=${MLFLOW:-}
if [[ -z "$MLFLOW_BIN" ]]; then
    if [[ -x "$ROOT/.venv/bin/mlflow" ]]; then MLFLOW_BIN="$ROOT/.venv/bin/mlflow"; else MLFLOW_BIN=/work/venv/bin/mlflow; fi
fi
if [[ "${SKIP_MLFLOW:-0}" != 1 && ! -x "$MLFLOW_BIN" ]]; then log "MLflow: no mlflow executable found; rows skipped"; SKIP_MLFLOW=1; fi

# mlflow_ingest NAME BACKEND_URI: MLflow's own OTLP ingest into a new database; sets MLFLOW_SPANS, MLFLOW_P99,
# MLFLOW_RSS_KIB, MLFLOW_STARTUP_S (empty MLFLOW_SPANS when it did not start).
mlflow_ingest() {
    local name=$1 backend=$2 port; port=$(free_port)
    MLFLOW_SPANS=""
    mkdir -p "$OUT/$name"
    log "MLflow ($name): starting $MLFLOW_BIN server on 127.0.0.1:$port…"
    local t0; t0=$(now_ns)
    setsid "$MLFLOW_BIN" server --host 127.0.0.1 --port "$port" \
        --backend-store-uri "$backend" --default-artifact-root "$OUT/$name/artifacts" \
        >"$OUT/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    until curl -sf -o /dev/null "http://127.0.0.1:$port/health"; do
        if ! kill -0 "$pid" 2>/dev/null; then log "mlflow died:"; tail -20 "$OUT/$name.log" >&2; return; fi
        sleep 0.2
    done
    MLFLOW_STARTUP_S=$(calc "round(($(now_ns) - $t0) / 1e9, 1)")
    local experiment
    experiment=$(curl -sf -X POST "http://127.0.0.1:$port/api/2.0/mlflow/experiments/create" \
        -H 'Content-Type: application/json' -d '{"name": "stitch-bench"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["experiment_id"])' || echo 0)
    log "MLflow ($name): healthy after ${MLFLOW_STARTUP_S} s; experiment $experiment; sending $MLFLOW_TRACES traces (at most ${MLFLOW_SECONDS} s)…"
    "$BIN/stitch-load" accept --target "http://127.0.0.1:$port" --seed "$SEED" --traces "$MLFLOW_TRACES" \
        --duration "$MLFLOW_SECONDS" --connections 4 --experiment-id "$experiment" --max-attempts 1 \
        --json-out "$OUT/$name.json" | tee "$OUT/$name.txt" >&2 || true
    MLFLOW_SPANS=$(jget "$OUT/$name.json" spans_per_second)
    MLFLOW_P99=$(jget "$OUT/$name.json" latency_p99_ms)
    MLFLOW_RSS_KIB=$(ps -o rss= -g "$(ps -o pgid= -p "$pid" | tr -d ' ')" | awk '{ s += $1 } END { print s }')
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

# mlflow_database_row NAME URI: the end-to-end row's traffic through an `mlflow_database` destination into a
# database MLflow created (its schema made by MLflow's own store class, as `mlflow server` makes it); the
# check reads MLflow's tables. Sets MDB_SPANS, MDB_STEADY, MDB_EXACT, MDB_TOTAL, MDB_NON2XX.
mlflow_database_row() {
    local name=$1 uri=$2 check=$3
    MDB_SPANS=""
    "$(dirname "$MLFLOW_BIN")/python" -c 'import sys
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
SqlAlchemyStore(sys.argv[1], sys.argv[2]).engine.dispose()' "$uri" "$OUT/$name.artifacts" 2>"$OUT/$name.create.log" \
        || { log "$name: could not create the MLflow database:"; tail -5 "$OUT/$name.create.log" >&2; return; }
    printf 'destinations:\n  - name: mlflow-db\n    mlflow_database: { url: "%s", experiment_id: "0" }\n' "$uri" >"$OUT/$name.yaml"
    log "end-to-end: $E2E_TRACES traces through mlflow_database into $name…"
    CONFIG="$OUT/$name.yaml" CHECK_DB="$check" start_stitch "$name" --idle-timeout 2s
    load "$name" e2e --traces "$E2E_TRACES" --connections 4 --duplicate-rate 0.01 --timeout 420 --max-attempts 100000 || true
    MDB_SPANS=$(jget "$OUT/$name.json" e2e_spans_per_second)
    MDB_STEADY=$(jget "$OUT/$name.json" steady_commit_spans_per_second)
    MDB_EXACT=$(jget "$OUT/$name.json" traces_exact)
    MDB_TOTAL=$(jget "$OUT/$name.json" traces_total)
    MDB_NON2XX=$(jget "$OUT/$name.json" non_2xx)
    CONFIG="$OUT/$name.yaml" stop_stitch
}

MLFLOW_SPANS=""
MDB_ROWS=()
if [[ "${SKIP_MLFLOW:-0}" != 1 ]]; then
    mlflow_ingest mlflow "sqlite:///$OUT/mlflow/mlflow.db"
    MLFLOW_SQLITE_SPANS=$MLFLOW_SPANS; MLFLOW_SQLITE_P99=$MLFLOW_P99
    MLFLOW_SQLITE_RSS_KIB=$MLFLOW_RSS_KIB; MLFLOW_SQLITE_STARTUP_S=$MLFLOW_STARTUP_S
    mkdir -p "$OUT/mlflow-database"
    mlflow_database_row mlflow-database-sqlite "sqlite:///$OUT/mlflow-database/mlflow.db" "$OUT/mlflow-database/mlflow.db"
    if [[ -n "$MDB_SPANS" ]]; then
        MDB_ROWS+=("| into MLflow's database (SQLite) | $(fmt_int "$MDB_SPANS") spans/s (steady commit $(fmt_int "$MDB_STEADY")) = $(fmt_int "$(calc "$MDB_SPANS / max(1e-9, ${MLFLOW_SQLITE_SPANS:-0})")")× MLflow's own ingest into SQLite; traces exact $MDB_EXACT / $MDB_TOTAL; non-2xx $MDB_NON2XX | ≥ 100× MLflow | the end-to-end row's traffic through an \`mlflow_database\` destination (disk queue, fsync per batch) into a database MLflow created, checked in MLflow's tables |")
    fi
    if [[ -n "${PG_URL:-}" ]]; then
        psql "$PG_URL" -qXc "CREATE DATABASE mlflow_own" >/dev/null
        psql "$PG_URL" -qXc "CREATE DATABASE mlflow_stitch" >/dev/null
        # MLflow's SQLAlchemy takes postgresql:// as psycopg 3, which is not installed: name psycopg2.
        MLFLOW_OWN_URL="${PG_URL/\/postgres\?//mlflow_own?}"
        mlflow_ingest mlflow-postgres "${MLFLOW_OWN_URL/postgresql:/postgresql+psycopg2:}"
        MLFLOW_PG_SPANS=$MLFLOW_SPANS; MLFLOW_PG_P99=$MLFLOW_P99
        if [[ -n "$MLFLOW_PG_SPANS" ]]; then
            MDB_ROWS+=("| MLflow on PostgreSQL | $(fmt_int "$MLFLOW_PG_SPANS") spans/s (p99 $(fmt "$MLFLOW_PG_P99" 0) ms) | — | mlflow server on the same PostgreSQL, the first $MLFLOW_TRACES traces of the same traffic, ≤ ${MLFLOW_SECONDS} s |")
        fi
        MDB_URL="${PG_URL/\/postgres\?//mlflow_stitch?}"
        mlflow_database_row mlflow-database-postgres "${MDB_URL/postgresql:/postgresql+psycopg2:}" "${MDB_URL%%\?*}"
        if [[ -n "$MDB_SPANS" ]]; then
            MDB_ROWS+=("| into MLflow's database (PostgreSQL) | $(fmt_int "$MDB_SPANS") spans/s (steady commit $(fmt_int "$MDB_STEADY")) = $(fmt_int "$(calc "$MDB_SPANS / max(1e-9, ${MLFLOW_PG_SPANS:-0})")")× MLflow's own ingest into PostgreSQL; traces exact $MDB_EXACT / $MDB_TOTAL; non-2xx $MDB_NON2XX | ≥ 100× MLflow | as the SQLite row, into a database MLflow created on the local PostgreSQL |")
        fi
    fi
    MLFLOW_SPANS=$MLFLOW_SQLITE_SPANS; MLFLOW_P99=$MLFLOW_SQLITE_P99
    MLFLOW_RSS_KIB=$MLFLOW_SQLITE_RSS_KIB; MLFLOW_STARTUP_S=$MLFLOW_SQLITE_STARTUP_S
fi
if [[ -n "${PG_DIR:-}" ]]; then scripts/pg-server.sh stop "$PG_DIR"; PG_DIR=""; fi

# --- growth ----------------------------------------------------------------------------------------------
GROWTH_ROWS=()
# growth_row LABEL VALUE NAME STITCH_FLAGS -- LOAD_FLAGS: one end-to-end run on a new Stitch, one table row.
growth_row() {
    local label=$1 value=$2 name=$3; shift 3
    local stitch_flags=()
    while [[ "$1" != "--" ]]; do stitch_flags+=("$1"); shift; done
    shift
    start_stitch "$name" --idle-timeout 2s "${stitch_flags[@]}"
    load "$name" e2e --connections 4 --timeout 300 --max-attempts 100000 "$@" || true
    local json="$OUT/$name.json"
    GROWTH_ROWS+=("| $label | $(fmt_int "$value") | $(fmt_int "$(jget "$json" e2e_spans_per_second)") | $(fmt_int "$(jget "$json" steady_commit_spans_per_second)") | $(( $(kib "$STITCH_PID" VmHWM) / 1024 )) | $(jget "$json" traces_exact) / $(jget "$json" traces_total) |")
    stop_stitch
}
if [[ "${SKIP_GROWTH:-0}" != 1 ]]; then
    for spans in 10 1000 10000; do
        traces=$(( GROWTH_SPANS / spans ))
        log "growth: $traces traces × $spans spans…"
        growth_row "spans per trace" "$spans" "growth-spans-$spans" --max-buffered-bytes 2GiB -- \
            --traces "$traces" --spans-per-trace "$spans"
    done
    for open in 1000 10000 100000; do
        traces=$(( open > $(scale 20000) ? open : $(scale 20000) ))
        log "growth: $open traces open at once ($traces traces × 10 spans, 64 B inputs/outputs)…"
        growth_row "traces open at once" "$open" "growth-open-$open" --max-buffered-bytes 4GiB --max-traces 1000000 -- \
            --traces "$traces" --spans-per-trace 10 --attr-size 64 --open-traces "$open"
    done
fi

# --- tables ----------------------------------------------------------------------------------------------
{
    echo "Machine: $MACHINE. Stitch $REVISION, release build; stitch-load on the same machine; $(date -u +%Y-%m-%d)."
    echo "Traffic (stitch-load --seed $SEED): 3 services × 20 spans per trace, 10 string attributes per span,"
    echo "256 B mlflow.spanInputs/spanOutputs, protobuf, batches ≤ 512 spans, children before roots in half of the traces."
    echo
    echo "| row | result | target | how |"
    echo "|---|---:|---:|---|"
    echo "| decode | $(fmt_int "$DECODE_WIRE") spans/s per core ($(fmt "$(calc "$DECODE_BYTES / 1e9")" 2) GB/s); swift-protobuf $(fmt_int "$DECODE_PB") → $(fmt "$(calc "$DECODE_WIRE / $DECODE_PB")" 1)× | — | stitch-bench-decode, standard batch of 100 spans, one thread; full span decode (store path): $(fmt_int "$DECODE_DETAIL") spans/s |"
    echo "| accept | $(fmt_int "$ACCEPT_SPANS") spans/s ($(fmt_int "$ACCEPT_RPS") requests/s), p50 $(fmt "$ACCEPT_P50" 1) ms, p99 $(fmt "$ACCEPT_P99" 1) ms, non-2xx $ACCEPT_NON2XX | ≥ 500,000 | $(fmt_int "$(calc "$ACCEPT_TRACES * 20")") spans, 4 connections, as fast as answered, after one unmeasured burst; traces held (idle timeout 10m), so the store is idle |"
    echo "| accept over OTLP/gRPC | $(fmt_int "$GRPC_SPANS") spans/s = $(fmt_int "$(calc "100 * $GRPC_SPANS / max(1, $ACCEPT_SPANS)")") % of the accept row, p50 $(fmt "$GRPC_P50" 1) ms, p99 $(fmt "$GRPC_P99" 1) ms, not OK $GRPC_NOTOK | ≥ 80 % of OTLP/HTTP | the accept row's traffic as TraceService/Export calls, 4 HTTP/2 connections, one call in flight on each, right after the accept row |"
    echo "| latency at half peak | p99 $(fmt "$HALF_P99" 1) ms (p50 $(fmt "$HALF_P50" 1), max $(fmt "$HALF_MAX" 1)) at $(fmt_int "$HALF_ACHIEVED") spans/s | p99 ≤ 10 ms | the accept row's $(fmt_int "$(calc "$ACCEPT_TRACES * 20")") spans at --rate $(fmt_int "$HALF_RATE"), 8 connections, latency from when each request was due |"
    echo "| end-to-end | $(fmt_int "$E2E_SPANS") spans/s (steady commit $(fmt_int "$E2E_STEADY") spans/s); traces exact $E2E_EXACT / $E2E_TOTAL; non-2xx $E2E_NON2XX | ≥ 100,000, 100 % exact | $(fmt_int "$(calc "$E2E_TRACES * 20")") spans, first request → every trace committed ($(fmt "${E2E_SECONDS:-0}" 1) s, includes the 2 s idle timeout), 1 % duplicate requests, 503s retried |"
    if [[ -n "$PG_SPANS" ]]; then
        echo "| end-to-end into PostgreSQL | $(fmt_int "$PG_SPANS") spans/s (steady commit $(fmt_int "$PG_STEADY") spans/s) = $(fmt_int "$(calc "100 * $PG_SPANS / max(1, ${E2E_SPANS:-0})")") % of SQLite's; traces exact $PG_EXACT / $PG_TOTAL; non-2xx $PG_NON2XX | ≥ the SQLite row | the end-to-end row's traffic, --db postgresql://… on a local PostgreSQL 15 (scripts/pg-server.sh, fsync off) |"
    fi
    if [[ -n "$MLFLOW_SPANS" ]]; then
        echo "| MLflow | $(fmt_int "$MLFLOW_SPANS") spans/s (p99 $(fmt "$MLFLOW_P99" 0) ms); Stitch end-to-end / MLflow = $(fmt_int "$(calc "${E2E_SPANS:-0} / max(1e-9, $MLFLOW_SPANS)")")× | ≥ 300× | mlflow server 3.x on SQLite, the first $MLFLOW_TRACES traces of the same traffic, ≤ ${MLFLOW_SECONDS} s; RSS $(( ${MLFLOW_RSS_KIB:-0} / 1024 )) MiB, start-up ${MLFLOW_STARTUP_S} s |"
    fi
    if (( ${#MDB_ROWS[@]} > 0 )); then printf '%s\n' "${MDB_ROWS[@]}"; fi
    echo "| footprint: idle RSS | $(( IDLE_RSS_KIB / 1024 )) MiB after start-up; $(( E2E_IDLE_RSS_KIB / 1024 )) MiB idle after the end-to-end run | ≤ 30 MiB | VmRSS 1 s after start-up (code pages unmapped once ready), and 12 s after the end-to-end run's last commit (after 5 s without traffic: store caches freed, heap trimmed, code pages unmapped again; heap arenas capped at 2) |"
    echo "| footprint: RSS under load | $(( LOAD_HWM_KIB / 1024 )) MiB (accept burst, $(fmt_int "$BUFFERED_SPANS") spans held), $(( E2E_HWM_KIB / 1024 )) MiB (end-to-end) | — | VmHWM |"
    echo "| footprint: memory per buffered span | $(fmt_int "$HELD_PER_SPAN") B held per span, $(fmt_int "$ENCODED_PER_SPAN") B encoded → $(fmt "$HELD_RATIO" 2)× | ≤ 2× | RSS growth over idle after the accept burst ÷ stitch_buffered_bytes |"
    if [[ -n "$HELD" ]]; then
        echo "| footprint: held by open spans | peak RSS $(held peak_rss_mib) MiB for $(held requests) requests ($(held body_mib) MiB); stitch_buffered_bytes $(fmt_int "$(held buffered_bytes)") B for $(held buffered_spans) open spans, each $(held open_span_bytes_each) B alone | bound 64 MiB | Benchmarks/held.sh: one never-closing span + a closed 1,000-span trace per request, max_buffered_bytes and store_queue_max_bytes 64 MiB; VmHWM, then /metrics once the closed traces are released |"
    fi
    echo "| footprint: start-up to healthy | $STARTUP_MS_MEDIAN ms | < 500 ms | spawn → first 200 from /healthz, new store (median of 3) |"
    if (( ${#GROWTH_ROWS[@]} > 0 )); then
        echo
        echo "Growth (end-to-end into SQLite; spans-per-trace rows: $(fmt_int "$GROWTH_SPANS") spans each; open-traces rows: 10 spans per trace, 64 B inputs/outputs):"
        echo
        echo "| grows | value | end-to-end spans/s | steady commit spans/s | RSS peak MiB | traces exact |"
        echo "|---|---:|---:|---:|---:|---:|"
        printf '%s\n' "${GROWTH_ROWS[@]}"
    fi
} | tee "$OUT/results.md"
log "results: $OUT/results.md"
