#!/usr/bin/env bash
# CI smoke test of the load generator's end-to-end mode (not a timed test).
#
# Starts Stitch on a free loopback port with a temporary store, sends a few seconds of generated traffic at
# a small rate (3 services × 20 spans per trace, children before roots, duplicate requests, late spans sent
# after the idle timeout), waits for the store to hold every trace and fails unless every trace is exact
# ("traces exact: N / N").
#
# Usage: Benchmarks/smoke.sh            (debug build, as CI's tests use)
#        STITCH_BUILD=release Benchmarks/smoke.sh
# Env:   SMOKE_TRACES (default 150), SMOKE_RATE spans/s (default 1500), SMOKE_FORMATS (default "protobuf json";
#        e.g. "protobuf json" once OTLP/JSON is implemented), SMOKE_GZIP=1 to gzip the bodies.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${STITCH_BUILD:-debug}
TRACES=${SMOKE_TRACES:-150}
RATE=${SMOKE_RATE:-1500}
FORMATS=${SMOKE_FORMATS:-protobuf json}
GZIP_FLAG=()
if [[ "${SMOKE_GZIP:-0}" == 1 ]]; then GZIP_FLAG=(--gzip); fi

swift build -c "$BUILD" --product stitch 2>&1 | tail -3
swift build -c "$BUILD" --product stitch-load 2>&1 | tail -3
BIN=$(swift build -c "$BUILD" --show-bin-path)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stitch-smoke.XXXXXX")
STITCH_PID=""
cleanup() {
    if [[ -n "$STITCH_PID" ]] && kill -0 "$STITCH_PID" 2>/dev/null; then
        kill "$STITCH_PID" 2>/dev/null || true
        wait "$STITCH_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

status=0
for format in $FORMATS; do
    PORT=$(free_port)
    DB="$WORK/smoke-$format.db"
    "$BIN/stitch" serve --listen "127.0.0.1:$PORT" --db "$DB" --idle-timeout 500ms --max-trace-age 20s \
        --log-level warning >"$WORK/stitch-$format.log" 2>&1 &
    STITCH_PID=$!
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; then break; fi
        if ! kill -0 "$STITCH_PID" 2>/dev/null; then
            echo "smoke: stitch exited during start-up:"; cat "$WORK/stitch-$format.log"; exit 1
        fi
        sleep 0.1
    done

    echo "== smoke ($format): $TRACES traces at $RATE spans/s =="
    if ! "$BIN/stitch-load" e2e --target "http://127.0.0.1:$PORT" --db "$DB" --format "$format" "${GZIP_FLAG[@]}" \
        --traces "$TRACES" --rate "$RATE" --connections 2 --batch-spans 64 \
        --children-first-share 0.5 --duplicate-rate 0.05 --late-rate 0.05 --late-delay 1.5 \
        --experiment-id 0 --timeout 60 --seed 7; then
        echo "smoke ($format): FAILED"; tail -20 "$WORK/stitch-$format.log"; status=1
    fi
    kill "$STITCH_PID" 2>/dev/null || true
    wait "$STITCH_PID" 2>/dev/null || true
    STITCH_PID=""
done
exit $status
