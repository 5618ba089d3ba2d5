"""The README's main job: profile examples/demo_app.py, write pprof files, a flame graph page, show the top functions.

Run through hatch (``hatch run demo``) or with the packages installed:
``python scripts/demo.py [OUTPUT_DIR]`` (default ./profiles).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "profiles"))
    shutil.rmtree(out, ignore_errors=True)
    app = os.path.join(ROOT, "examples", "demo_app.py")
    env = dict(os.environ, DD_SERVICE="demo-app", DD_ENV="local")
    print("$ profiler-run --output %s python examples/demo_app.py" % out, flush=True)
    code = subprocess.call([sys.executable, "-m", "profiler.run", "--output", out, sys.executable, app], env=env)
    if code:
        return code
    files = sorted(glob.glob(os.path.join(out, "*.pprof")))
    if not files:
        print("no profile was written", file=sys.stderr)
        return 1
    for sample_type in ("cpu-time", "wall-time"):
        print("\n$ profiler top --type %s --limit 10 %s/*.pprof" % (sample_type, out), flush=True)
        code = subprocess.call([sys.executable, "-m", "profiler.cli", "top", "--type", sample_type, "--limit", "10"] + files)
        if code:
            return code
    html = os.path.join(out, "flamegraph.html")
    print("\n$ profiler flamegraph %s/*.pprof -o %s" % (out, html), flush=True)
    code = subprocess.call([sys.executable, "-m", "profiler.cli", "flamegraph", "-o", html] + files)
    if code:
        return code
    print("\n$ profiler top --by thread %s/*.pprof" % out, flush=True)
    return subprocess.call([sys.executable, "-m", "profiler.cli", "top", "--by", "thread"] + files)


if __name__ == "__main__":
    sys.exit(main())
