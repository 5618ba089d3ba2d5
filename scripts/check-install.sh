#!/usr/bin/env bash
# Install "pyprof-dd[all]" from DIST (scripts/build-dists.sh) into a fresh venv, the README's way, and
# check that it is this project and nothing else: scripts/check-install.py reads pip's install
# report; then both commands' --version and a tiny profile, run from outside the repository.
#   scripts/check-install.sh [DIST]        PYTHON=python3.11 (default python3)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIST="$(cd "${1:-$ROOT/dist}" && pwd)"
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
cd "$work"  # nothing of the repository on sys.path
if ! "$py" -m pip install --quiet --report "$work/report.json" --find-links "$DIST" "pyprof-dd[all]" >"$work/pip.log" 2>&1; then
  cat "$work/pip.log" >&2
  exit 1
fi
echo "installed into a fresh venv:"
"$py" "$ROOT/scripts/check-install.py" "$work/report.json" "$DIST"

"$work/venv/bin/profiler" --version
"$work/venv/bin/profiler-run" --version | head -1
if "$work/venv/bin/profiler" --version | grep -q "not installed"; then
  echo "check-install: a distribution is missing" >&2
  exit 1
fi
"$py" - <<'PY'
import sys
import profiler, profiler_core, profiler_stack, profiler_lock, profiler_memory, profiler_exception, profiler_agent, zstandard
for module in (profiler, profiler_core, profiler_stack, profiler_lock, profiler_memory, profiler_exception, profiler_agent):
    assert module.__file__.startswith(sys.prefix), module.__file__
PY
cat >"$work/app.py" <<'PY'
import time
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
spin(0.5)
PY
"$work/venv/bin/profiler-run" --output "$work/profiles" --enable exception "$py" "$work/app.py" 2>"$work/run.log" || {
  cat "$work/run.log" >&2
  exit 1
}
"$work/venv/bin/profiler" top --type cpu-time "$work"/profiles/*.pprof >"$work/top.txt"
if ! grep -q "spin" "$work/top.txt"; then
  cat "$work/run.log" "$work/top.txt" >&2
  echo "check-install: the profile has no spin()" >&2
  exit 1
fi
head -3 "$work/top.txt"
echo "fresh install: ok"
