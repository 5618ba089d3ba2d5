#!/usr/bin/env bash
# Refresh the flame graph library bundled into `profiler flamegraph` pages from the npm registry:
# d3 (ISC) and d3-flame-graph (Apache-2.0), pinned. The files are committed under
# packages/profiler/src/profiler/assets/ so that building and installing never needs npm.
set -euo pipefail
D3=7.9.2
FLAMEGRAPH=5.0.0
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ASSETS="$ROOT/packages/profiler/src/profiler/assets"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "d3@$D3" "d3-flame-graph@$FLAMEGRAPH" >/dev/null
mkdir d3 fg
tar xzf "d3-$D3.tgz" -C d3
tar xzf "d3-flame-graph-$FLAMEGRAPH.tgz" -C fg
cp d3/package/dist/d3.min.js "$ASSETS/d3.v7.min.js"
cp d3/package/LICENSE "$ASSETS/LICENSE.d3"
cp fg/package/dist/d3-flamegraph.umd.min.js "$ASSETS/d3-flamegraph.min.js"
cp fg/package/dist/d3-flamegraph.css "$ASSETS/d3-flamegraph.css"
cp fg/package/LICENSE "$ASSETS/LICENSE.d3-flame-graph"
echo "assets: d3 $D3, d3-flame-graph $FLAMEGRAPH -> $ASSETS"
