"""Install every package of the monorepo in editable mode into the running interpreter.

Used by the hatch environments (post-install) and by CI. Native (Cython)
packages are compiled in place for this interpreter; run again after editing a
``.pyx`` file. Build isolation is off so nothing but the environment's own
packages is used, and every package goes in one pip call so that local
packages satisfy each other's dependencies.
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# profiler-core first: everything else depends on it.
PACKAGES = [
    "core",
    "collector-stack",
    "collector-lock",
    "collector-memory",
    "collector-exception",
    "exporter-agent",
    "profiler",
]


def main() -> int:
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation"]
    for name in PACKAGES:
        args += ["-e", os.path.join(ROOT, "packages", name)]
    return subprocess.call(args)


if __name__ == "__main__":
    sys.exit(main())
