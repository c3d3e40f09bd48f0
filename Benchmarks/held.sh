#!/usr/bin/env bash
# Held memory: what a small span that outlives its request keeps alive (issue 10).
#
# ~150 requests of ~8 MiB; each carries one small span of a trace that never closes plus a closed 1,000-span
# trace (stitch-load --open-span-per-request). Stitch runs with max_buffered_bytes and store_queue_max_bytes
# of 64 MiB and a max_trace_age long enough that no open trace times out during the run. Prints one line of
# `key=value` figures: peak RSS (VmHWM), RSS at the end, stitch_buffered_bytes / _spans / _traces after the
# closed traces are stored, and what the open spans need on their own (the size of each one's request alone,
# as stitch-load computes it), so that the two byte counts can be compared.
#
# Usage: Benchmarks/held.sh [BIN]   (BIN: directory with release builds of stitch and stitch-load;
#                                   default: swift build -c release --show-bin-path)
# Env:   REQUESTS=150  ATTR_SIZE=3900 (7.9 MiB requests)  OUT=dir
#        RATE=2500 spans/s (~2.5 requests/s: the closed traces of one idle timeout, 2 s, stay under the 64 MiB
#        bound, so nothing needs evicting and what the open spans hold shows); RATE=0: as fast as answered
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-$(swift build -c release --show-bin-path)}
REQUESTS=${REQUESTS:-150}
RATE=${RATE:-2500}
ATTR_SIZE=${ATTR_SIZE:-3900}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/stitch-held.XXXXXX")}
mkdir -p "$OUT"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
DB="$OUT/held.db"
rm -f "$DB" "$DB-wal" "$DB-shm"

"$BIN/stitch" serve --listen "127.0.0.1:$PORT" --db "$DB" --log-level warning --queue-dir "$OUT/queues" \
    --idle-timeout 2s --max-trace-age 10m --max-buffered-bytes 64MiB --store-queue-max-bytes 64MiB \
    --max-body-size 64MiB >"$OUT/held.stitch.log" 2>&1 &
PID=$!
trap 'kill -KILL $PID 2>/dev/null || true; rm -f "$DB" "$DB-wal" "$DB-shm"' EXIT
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; do
    kill -0 "$PID" 2>/dev/null || { cat "$OUT/held.stitch.log" >&2; exit 1; }
    sleep 0.01
done
kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PID/status"; }
metric() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n || index($1, n"{") == 1 { printf "%d\n", $2; exit }'; }

IDLE_KIB=$(kib VmRSS)
"$BIN/stitch-load" accept --target "http://127.0.0.1:$PORT" --seed 1 --services 1 --spans-per-trace 1000 \
    --batch-spans 1000 --traces "$REQUESTS" --attr-size "$ATTR_SIZE" --open-span-per-request \
    --connections 2 --max-attempts 100000 --json-out "$OUT/held.json" $( (( RATE > 0 )) && echo --rate "$RATE" ) \
    >"$OUT/held.load.txt"
SEND_S=$(python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["send_seconds"], 1))' "$OUT/held.json")
OPEN_BYTES=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["open_span_request_bytes"])' "$OUT/held.json")
BODY_BYTES=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["body_bytes"])' "$OUT/held.json")
# Until every closed trace is released (only the open ones, one span each, are left buffered), at most 120 s.
for _ in $(seq 1 1200); do
    SPANS=$(metric stitch_buffered_spans); TRACES=$(metric stitch_buffered_traces)
    [[ -n "$SPANS" && "$SPANS" == "$TRACES" ]] && (( SPANS <= REQUESTS )) && break
    sleep 0.1
done
sleep 3
echo "requests=$REQUESTS rate=$RATE body_mib=$(( BODY_BYTES >> 20 )) send_s=$SEND_S idle_rss_mib=$(( IDLE_KIB / 1024 ))" \
    "peak_rss_mib=$(( $(kib VmHWM) / 1024 )) end_rss_mib=$(( $(kib VmRSS) / 1024 ))" \
    "buffered_bytes=$(metric stitch_buffered_bytes) buffered_spans=$(metric stitch_buffered_spans)" \
    "buffered_traces=$(metric stitch_buffered_traces) open_span_bytes_each=$(( OPEN_BYTES / REQUESTS ))" \
    "evicted=$(metric 'stitch_traces_released_total{reason="evicted"}' || true)" \
    "compacted_spans=$(metric stitch_spans_compacted_total || true)"
