#!/usr/bin/env bash
# Stitch as a cluster on one machine: N instances on loopback (cluster_self / cluster_peers), one
# PostgreSQL store they all write (scripts/pg-server.sh), and stitch-load sending to every instance
# (connection i to instance i mod N, so the requests of one trace reach different instances). Fails
# unless every trace is exact in the store ("traces exact: X / X").
#
# Usage: Benchmarks/cluster.sh
# Env:   INSTANCES=3       members (1: one plain instance, for the benchmark's baseline)
#        TRACES=2000       traces (20 spans each, 3 services)
#        KILL=1            SIGKILL instance 2 while the traffic runs, restart it on its queues, and then
#                          have the clients send everything again (what SDKs that were not answered
#                          resend); the store must hold every trace exactly once
#        PEER_PROTOCOL=grpc how members pass spans to each other (grpc or http)
#        BUILD=debug       which build of stitch and stitch-load to run (release for the benchmark)
#        OUT=dir           logs and results (default: a new temporary directory, kept)
# Prints one line per result:
#   "cluster: instances N spans/s X cpu_ms_per_1k_spans Y split Z forwarded F rerouted R exact A/B".
# Every process listens on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
INSTANCES=${INSTANCES:-3}
TRACES=${TRACES:-2000}
KILL=${KILL:-0}
BUILD=${BUILD:-debug}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/stitch-cluster.XXXXXX")}
mkdir -p "$OUT"
BIN=$(swift build -c "$BUILD" --show-bin-path)
[[ -x "$BIN/stitch" && -x "$BIN/stitch-load" ]] || { echo "cluster.sh: build stitch and stitch-load first ($BUILD)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
log() { echo "[cluster $(date +%H:%M:%S)] $*" >&2; }
PIDS=()
PG_DIR="$OUT/pg"
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    scripts/pg-server.sh stop "$PG_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

chmod 755 "$OUT"
PG_URL=$(scripts/pg-server.sh start "$PG_DIR" "$(free_port)")
DB="stitch_cluster"
psql "$PG_URL" -qXc "CREATE DATABASE $DB" >/dev/null
STORE="${PG_URL/\/postgres\?//$DB?}"

# Each member's OTLP/gRPC receiver (where its peers pass it spans) is at its OTLP/HTTP port + 1. Both are
# taken below Linux's ephemeral range (32768 and up), where a free port can become the source port of a
# member's first attempts to reach a peer that is still starting.
free_pair() { python3 -c '
import random, socket
while True:
    port = random.randrange(20000, 32000)
    a, b = socket.socket(), socket.socket()
    try:
        a.bind(("127.0.0.1", port)); b.bind(("127.0.0.1", port + 1)); print(port); break
    except OSError: pass
    finally: a.close(); b.close()'; }
PORTS=()
for _ in $(seq 1 "$INSTANCES"); do PORTS+=("$(free_pair)"); done
peers_of() {
    local self=$1 list=()
    for port in "${PORTS[@]}"; do [[ $port == "$self" ]] || list+=("127.0.0.1:$port"); done
    local IFS=,; echo "${list[*]}"
}
declare -A PID_OF
start_instance() {
    local index=$1 port=${PORTS[$1]}
    local cluster=()
    if (( INSTANCES > 1 )); then
        cluster=(--cluster-self "127.0.0.1:$port" --cluster-peers "$(peers_of "$port")"
                 --cluster-peer-protocol "${PEER_PROTOCOL:-grpc}" --cluster-health-interval 200ms --cluster-failure-timeout 2s)
    fi
    "$BIN/stitch" serve --listen "127.0.0.1:$port" --grpc-listen "127.0.0.1:$((port + 1))" --db "$STORE" --queue-dir "$OUT/queues-$index" \
        --idle-timeout 2s --log-level notice "${cluster[@]}" >>"$OUT/stitch-$index.log" 2>&1 &
    PID_OF[$index]=$!
    PIDS+=("$!")
    until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do
        kill -0 "${PID_OF[$index]}" 2>/dev/null || { log "instance $index died:"; cat "$OUT/stitch-$index.log" >&2; exit 1; }
        sleep 0.05
    done
}
for index in $(seq 0 $((INSTANCES - 1))); do start_instance "$index"; done
log "$INSTANCES instance(s) on ports ${PORTS[*]}, store $DB"
(( INSTANCES > 1 )) && curl -s "http://127.0.0.1:${PORTS[0]}/healthz" >&2

TARGETS=()
for port in "${PORTS[@]}"; do TARGETS+=(--target "http://127.0.0.1:$port"); done
cpu_ticks() {
    local total=0
    for index in "${!PID_OF[@]}"; do
        local stat; stat=$(cat "/proc/${PID_OF[$index]}/stat" 2>/dev/null) || continue
        local fields=(${stat##*) })
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

load() {
    local name=$1; shift
    "$BIN/stitch-load" e2e "${TARGETS[@]}" --seed 1 --traces "$TRACES" --connections $((INSTANCES > 1 ? 2 * INSTANCES : 4)) \
        --duplicate-rate 0.01 --db "$STORE" --timeout "${LOAD_TIMEOUT:-300}" --max-attempts 100000 --json-out "$OUT/$name.json" "$@" \
        >"$OUT/$name.txt" 2>&1 || true
}

TICKS=$(getconf CLK_TCK)
CPU0=$(cpu_ticks)
if [[ "$KILL" == 1 ]]; then
    # What the killed member held in its assembler is lost (and resent below): do not wait for it.
    LOAD_TIMEOUT=20 load main --rate 20000 &
    LOAD=$!
    sleep 1
    log "SIGKILL instance 1 (port ${PORTS[1]})"
    kill -KILL "${PID_OF[1]}"
    sleep 3
    log "restarting instance 1 on its queues"
    start_instance 1
    wait "$LOAD" || true
    grep -E "traces exact" "$OUT/main.txt" | sed 's/^/before the resend: /' >&2 || true
    log "clients send everything again"
    load resend
    RESULT=resend
else
    load main
    RESULT=main
fi
CPU1=$(cpu_ticks)

# Summed over the members: a metric's samples (every label set).
metric_sum() {
    local total=0
    for index in $(seq 0 $((INSTANCES - 1))); do
        value=$(curl -sf "http://127.0.0.1:${PORTS[$index]}/metrics" | awk -v name="$1" '$1 == name || index($1, name "{") == 1 { s += $2 } END { print s + 0 }')
        total=$(python3 -c "print(int(float('${value:-0}')) + $total)")
    done
    echo "$total"
}
SPLIT=$(metric_sum stitch_cluster_split_traces_total)
FORWARDED=$(metric_sum stitch_cluster_spans_forwarded_total)
REROUTED=$(metric_sum stitch_cluster_traces_rerouted_total)
read -r SPANS EXACT TOTAL < <(python3 -c "import json; d = json.load(open('$OUT/$RESULT.json')); print(d.get('e2e_spans_per_second') or 0, d.get('traces_exact'), d.get('traces_total'))")
SPAN_COUNT=$((TRACES * 20))
CPU_MS=$(python3 -c "print(round(($CPU1 - $CPU0) * 1000 / $TICKS / $SPAN_COUNT * 1000, 1))")
cat "$OUT/$RESULT.txt" | grep -E "traces exact|spans/s" >&2 || true
echo "cluster: instances $INSTANCES spans/s $(printf '%.0f' "$SPANS") cpu_ms_per_1k_spans $CPU_MS split $SPLIT forwarded $FORWARDED rerouted $REROUTED exact $EXACT/$TOTAL"
[[ "$EXACT" == "$TOTAL" ]]
