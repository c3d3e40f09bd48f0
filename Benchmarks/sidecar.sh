#!/usr/bin/env bash
# Request latency of the README's sidecar layout: a Stitch whose only destination is an `otlp` one
# (disk queue, `fsync: batch`), forwarding to a second Stitch on another port. One run, one line:
#   <label> spans/s p50 p99 max (ms) non-2xx, spans accepted by the sidecar and received by the central
#   one (waited for, up to 60 s), traces the sidecar's disk queue refused
#
# Usage: BIN=.build/release Benchmarks/sidecar.sh [label] [stitch-load flags…]
#        (default flags: accept --traces 10000 --connections 4; e.g. add --rate 60000 to pace it)
# Env:   BIN   directory holding stitch and stitch-load (release builds)
#        OUT   where logs, the queue and the JSON result go (default: a new temporary directory)
set -euo pipefail

BIN=${BIN:?set BIN to the directory of the stitch and stitch-load binaries}
LABEL=${1:-run}
shift || true
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/stitch-sidecar.XXXXXX")}
mkdir -p "$OUT"

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_healthy() {
    until curl -sf -o /dev/null "http://127.0.0.1:$1/healthz"; do sleep 0.05; done
}

CENTRAL_PORT=$(free_port)
"$BIN/stitch" serve --listen "127.0.0.1:$CENTRAL_PORT" --db "$OUT/central.db" --log-level warning \
    >"$OUT/central.log" 2>&1 &
PIDS+=($!)
wait_healthy "$CENTRAL_PORT"

SIDECAR_PORT=$(free_port)
# The README's sidecar.yaml, on local ports; fsync: batch is the default, written out to be explicit.
cat >"$OUT/sidecar.yaml" <<EOF
listen: 127.0.0.1:$SIDECAR_PORT
queue_dir: $OUT/queues
idle_timeout: 500ms
max_trace_age: 1s
log_level: warning
destinations:
  - name: central
    otlp:
      endpoint: http://127.0.0.1:$CENTRAL_PORT
      headers: { x-mlflow-experiment-id: "1" }
    queue: { fsync: batch }
EOF
"$BIN/stitch" serve --config "$OUT/sidecar.yaml" >"$OUT/sidecar.log" 2>&1 &
PIDS+=($!)
wait_healthy "$SIDECAR_PORT"

if [[ $# -eq 0 ]]; then set -- accept --traces 10000 --connections 4; fi
"$BIN/stitch-load" "$@" --target "http://127.0.0.1:$SIDECAR_PORT" --seed 1 --json-out "$OUT/$LABEL.json" \
    >"$OUT/$LABEL.txt" 2>&1
# Then wait (up to 60 s) until the central Stitch has received every span the sidecar accepted.
metric() { curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n"{") == 1 { s += $2 } END { print s + 0 }'; }
ACCEPTED=$(metric "$SIDECAR_PORT" stitch_spans_received_total)
for _ in $(seq 1 600); do
    DELIVERED=$(metric "$CENTRAL_PORT" stitch_spans_received_total)
    [[ "$DELIVERED" -ge "$ACCEPTED" ]] && break
    sleep 0.1
done
REFUSED=$(metric "$SIDECAR_PORT" stitch_queue_refused_traces_total)
python3 - "$OUT/$LABEL.json" "$LABEL" "$ACCEPTED" "$DELIVERED" "$REFUSED" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(sys.argv[2], "spans/s", round(d["spans_per_second"]), "p50", d["latency_p50_ms"], "p99", d["latency_p99_ms"],
      "max", d["latency_max_ms"], "non2xx", d.get("non_2xx"), "accepted", sys.argv[3], "delivered", sys.argv[4],
      "queue_refused", sys.argv[5])
EOF
