#!/usr/bin/env bash
# Installs what a fresh machine (Debian 12, Swift at /opt/swift, CPython 3.10+) lacks to build and
# test Stitch: the C libraries and tools from Debian, and the interop suite's Python environment in
# .venv/. Idempotent: a second run does nothing and takes about a second. Quiet on success; on
# failure it says which step failed and prints that step's output.
#
# Environment:
#   STITCH_PYTHON   interpreter for the venv (default: python3.11, else python3)
#   STITCH_VENV     where the venv lives (default: <repo>/.venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$root/Tests/interop/requirements.txt"
venv="${STITCH_VENV:-$root/.venv}"
# SQLite and zlib for the build, protoc for proto/ regeneration, venv support for Debian's own python3,
# and PostgreSQL's server (the tests start their own, on a free port in a temporary directory).
debian_packages=(libsqlite3-dev zlib1g-dev protobuf-compiler python3-venv postgresql)

step_log="$(mktemp)"
trap 'rm -f "$step_log"' EXIT

fail() {
    echo "bootstrap: FAILED: $1" >&2
    if [[ -s "$step_log" ]]; then
        echo "---- output of the failed step (last 80 lines) ----" >&2
        tail -n 80 "$step_log" >&2
        echo "----" >&2
    fi
    exit 1
}

# Runs a command with its output captured in $step_log; on failure, fails loudly with $1.
run_step() {
    local what="$1"
    shift
    : >"$step_log"
    "$@" >>"$step_log" 2>&1 </dev/null || fail "$what (command: $*)"
}

# ---- Debian packages -------------------------------------------------------------------------
missing=()
for package in "${debian_packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
    command -v apt-get >/dev/null || fail "missing Debian packages ${missing[*]} and no apt-get to install them"
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null || fail "missing Debian packages ${missing[*]}; run as root or install sudo"
        sudo=(sudo -n)
    fi
    run_step "apt-get update" "${sudo[@]}" apt-get update
    run_step "apt-get install ${missing[*]}" \
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# ---- Python venv for the interop suite -------------------------------------------------------
python="${STITCH_PYTHON:-}"
if [[ -z "$python" ]]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys' >/dev/null 2>&1; then
            python="$candidate"
            break
        fi
    done
fi
[[ -n "$python" ]] || fail "no Python interpreter found (tried python3.11, python3; set STITCH_PYTHON)"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null \
    || fail "$python is not a Python 3.10 or newer, which MLflow 3.17 requires (set STITCH_PYTHON)"
[[ -f "$requirements" ]] || fail "requirements file $requirements not found"

# The stamp holds a hash of the requirements and of the interpreter's version: when both match,
# the venv already has exactly these packages and pip is skipped.
python_version="$("$python" -c 'import sys; print(sys.version.split()[0])')"
wanted="$( (cat "$requirements"; echo "python $python_version") | sha256sum | cut -d' ' -f1)"
stamp="$venv/.stitch-requirements.sha256"

venv_works() {
    [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys' >/dev/null 2>&1
}

if venv_works && [[ -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    exit 0
fi

if ! venv_works || [[ "$("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')" != "$python_version" ]]; then
    rm -rf "$venv"
    run_step "create the venv at $venv with $python" "$python" -m venv "$venv"
fi
rm -f "$stamp"
run_step "pip install -r $requirements" \
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
run_step "check the venv's packages" "$venv/bin/python" -m pip check
echo "$wanted" >"$stamp"
