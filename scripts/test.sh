#!/usr/bin/env bash
# The test command: installs what is missing (scripts/bootstrap.sh), builds Stitch (debug), runs the
# Swift tests (Swift Testing and XCTest) and the interop suite (Tests/interop, real OpenTelemetry and
# MLflow clients against the built binary), then prints one closing line
#
#     N passed, M failed
#
# that sums both suites, and exits non-zero if anything failed. A phase that breaks without
# reporting a failing test (a build error, a crash, a time-out) counts as one failure.
#
# Environment:
#   STITCH_BUILD_TIMEOUT   seconds for `swift build` (default 1800)
#   STITCH_SWIFT_TIMEOUT   seconds for `swift test` (default 900)
#   STITCH_PYTEST_TIMEOUT  seconds for the interop suite (default 900)
#   PYTEST_ARGS            extra arguments for pytest (e.g. "-k mlflow -x")
# Full logs of every phase: .build/test-reports/.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 1

if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

reports="$root/.build/test-reports"
mkdir -p "$reports"

passed=0
failed=0
skipped=0
problems=()

# Prints the closing lines and exits: non-zero when anything failed or broke.
finish() {
    echo
    for problem in "${problems[@]}"; do echo "problem: $problem"; done
    if ((skipped > 0)); then echo "($skipped skipped)"; fi
    echo "$passed passed, $failed failed"
    if ((failed > 0)); then exit 1; fi
    exit 0
}

# Counts one failure for a phase that broke without reporting a failing test.
broke() {
    problems+=("$1")
    failed=$((failed + 1))
}

# run_phase NAME TIMEOUT LOG FILTER COMMAND...: runs COMMAND with a time limit, its output on the
# console (lines matching the extended regex FILTER left out there) and in LOG. Returns its status;
# 124 means it timed out.
run_phase() {
    local name="$1" limit="$2" log="$3" filter="$4"
    shift 4
    local started=$SECONDS
    echo "==> $name"
    # timeout(1) signals the whole process group, so test runners and servers they started go too.
    timeout --kill-after=30 "$limit" "$@" </dev/null 2>&1 | tee "$log" | grep --line-buffered -vE "$filter"
    local status=${PIPESTATUS[0]}
    echo "==> $name: exit status $status after $((SECONDS - started)) s"
    return "$status"
}

# Counts the lines of FILE that match the extended regex PATTERN (0 when none).
count_lines() {
    local n
    n="$(grep -cE "$1" "$2" 2>/dev/null)" || true
    echo "${n:-0}"
}

nothing='^$^' # a filter that leaves every line in

# ---- 1. bootstrap ------------------------------------------------------------------------------
if ! run_phase "bootstrap" 1200 "$reports/bootstrap.log" "$nothing" scripts/bootstrap.sh; then
    broke "scripts/bootstrap.sh failed (see above)"
    finish
fi

# ---- 2. build (debug): the product and every test target -----------------------------------------
# A run takes ~2 GiB (debug build with tests, the interop venv); a full disk shows up as compiler errors
# ("No space left on device") deep in the build log, so say it up front.
free_kib=$(df -Pk "$root" 2>/dev/null | awk 'NR == 2 { print $4 }')
if [[ -n "$free_kib" ]] && ((free_kib < 4 * 1024 * 1024)); then
    echo "warning: only $((free_kib / 1024)) MiB free on the disk holding $root; a test run needs about 2 GiB"
fi
build_timeout="${STITCH_BUILD_TIMEOUT:-1800}"
progress='^\[[0-9]+/[0-9]+\] ' # SwiftPM's per-step progress lines, kept in the log only
bin_dir="$(swift build --show-bin-path 2>/dev/null)" || bin_dir="$root/.build/debug"
stitch_bin="${bin_dir:-$root/.build/debug}/stitch"
tests_built=true
if ! run_phase "swift build (debug, with tests)" "$build_timeout" "$reports/build.log" "$progress" \
    swift build --build-tests; then
    broke "swift build --build-tests failed (log: $reports/build.log)"
    tests_built=false
    rm -f "$stitch_bin" # never test a stale binary
fi
if [[ ! -x "$stitch_bin" ]]; then
    # Without the test targets (or if they failed to compile) the interop suite can still run.
    run_phase "swift build --product stitch" "$build_timeout" "$reports/build-stitch.log" "$progress" \
        swift build --product stitch || true
fi

# ---- 3. swift test -------------------------------------------------------------------------------
swift_log="$reports/swift-test.log"
: >"$swift_log"
swift_status=0
if $tests_built; then
    run_phase "swift test" "${STITCH_SWIFT_TIMEOUT:-900}" "$swift_log" "$nothing" swift test --skip-build
    swift_status=$?
fi
# XCTest: "Test Case 'Suite.testName' passed (0.001 seconds)".
xc_passed="$(count_lines "^Test Case '.*' passed \(" "$swift_log")"
xc_failed="$(count_lines "^Test Case '.*' failed \(" "$swift_log")"
xc_skipped="$(count_lines "^Test Case '.*' skipped \(" "$swift_log")"
# Swift Testing: "✔ Test name() passed after …", "✘ Test name() failed after …", "➜ Test name() skipped"
# (the run's own "Test run with N tests …" line is not a test).
st_passed="$(count_lines '^[^ ]+ Test (.* )?passed after ' "$swift_log")"
st_failed="$(count_lines '^[^ ]+ Test (.* )?failed after ' "$swift_log")"
st_runs_passed="$(count_lines '^[^ ]+ Test run with .* passed after ' "$swift_log")"
st_runs_failed="$(count_lines '^[^ ]+ Test run with .* failed after ' "$swift_log")"
st_passed=$((st_passed - st_runs_passed))
st_failed=$((st_failed - st_runs_failed))
st_skipped="$(count_lines '^[^ ]+ Test .* skipped([:.]|$)' "$swift_log")"
swift_passed=$((xc_passed + st_passed))
swift_failed=$((xc_failed + st_failed))
passed=$((passed + swift_passed))
failed=$((failed + swift_failed))
skipped=$((skipped + xc_skipped + st_skipped))
echo "swift test: $swift_passed passed, $swift_failed failed (XCTest $xc_passed/$xc_failed, Swift Testing $st_passed/$st_failed)"
if ((swift_status != 0 && swift_failed == 0)); then
    broke "swift test exited with status $swift_status without a failing test (crash or time-out; log: $swift_log)"
fi

# ---- 4. interop suite (real OpenTelemetry and MLflow clients against the binary) ---------------------
if [[ ! -x "$stitch_bin" ]]; then
    broke "no stitch binary at $stitch_bin: the interop suite did not run"
    finish
fi
py_log="$reports/interop.log"
venv_python="${STITCH_VENV:-$root/.venv}/bin/python"
# shellcheck disable=SC2086 # PYTEST_ARGS is a list of words on purpose
run_phase "interop (pytest Tests/interop)" "${STITCH_PYTEST_TIMEOUT:-900}" "$py_log" \
    "$nothing" env STITCH_BIN="$stitch_bin" "$venv_python" -m pytest Tests/interop -q \
    --junitxml="$reports/interop.xml" ${PYTEST_ARGS:-}
py_status=$?
# pytest's closing line, e.g. "2 failed, 7 passed, 1 skipped, 1 error in 12.3s".
py_summary="$(grep -E '^=* *(no tests ran|[0-9]+ (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?))' "$py_log" | tail -n 1)"
py_count() { grep -oE "[0-9]+ $1" <<<"$py_summary" | grep -oE '^[0-9]+' || echo 0; }
py_passed=$(($(py_count passed) + $(py_count xpassed)))
py_failed=$(($(py_count failed) + $(py_count 'errors?')))
passed=$((passed + py_passed))
failed=$((failed + py_failed))
skipped=$((skipped + $(py_count skipped) + $(py_count xfailed)))
echo "interop: $py_passed passed, $py_failed failed"
if ((py_status == 5)); then
    broke "pytest collected no tests in Tests/interop"
elif ((py_status != 0 && py_failed == 0)); then
    broke "pytest exited with status $py_status without a failing test (time-out or internal error; log: $py_log)"
fi

# ---- 5. load generator smoke (end-to-end mode, a few seconds; fails unless every trace is exact) ------
smoke_log="$reports/smoke.log"
if run_phase "load generator smoke (Benchmarks/smoke.sh)" "${STITCH_SMOKE_TIMEOUT:-900}" "$smoke_log" "$progress" \
    Benchmarks/smoke.sh; then
    passed=$((passed + 1))
    echo "smoke: 1 passed, 0 failed ($(grep -E 'traces exact' "$smoke_log" | tail -n 1))"
else
    failed=$((failed + 1))
    problems+=("the load generator's end-to-end smoke failed (log: $smoke_log)")
    echo "smoke: 0 passed, 1 failed"
fi

finish
