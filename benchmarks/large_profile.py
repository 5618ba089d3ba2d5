"""A large, realistic pprof for timing the ``profiler`` command: ``python benchmarks/large_profile.py OUT [SAMPLES]``.

Stacks are walks down one synthetic call tree (shared prefixes, as in a real
service), 64 frames deep (the default ``DD_PROFILING_MAX_FRAMES``), with thread
and task labels and four sample types; encoded by the project's own encoder.
The default 550,000 samples make about 100 MB of uncompressed pprof. Measure with
``/usr/bin/time -v profiler top OUT`` (elapsed time and maximum resident set size).
"""

from __future__ import annotations

import gzip
import random
import sys

from profiler_core.events import Frame
from profiler_core.pprof import encode_profile
from profiler_core.recorder import RecorderSnapshot

DEPTH = 64


def build(samples: int, seed: int = 1) -> bytes:
    """Uncompressed pprof bytes of ``samples`` distinct samples."""
    rng = random.Random(seed)
    modules = ["/srv/app/%s/mod%d.py" % (pkg, i) for pkg in ("api", "db", "core", "util") for i in range(50)]
    functions = [Frame(rng.choice(modules), "func_%d" % i, rng.randrange(1, 2000)) for i in range(20_000)]
    fanout = 6
    threads = ["worker-%d" % i for i in range(32)]
    out = {}
    while len(out) < samples:
        # root first: child i of node n is function (n * fanout + i) % len(functions)
        node, stack = 0, []
        for _ in range(DEPTH):
            node = (node * fanout + rng.randrange(fanout) + 1) % len(functions)
            stack.append(functions[node])
        stack.reverse()  # leaf first
        thread = rng.choice(threads)
        labels = (("thread id", threads.index(thread) + 1000), ("thread name", thread), ("task name", "t%d" % rng.randrange(100)))
        out[(tuple(stack), labels)] = {
            "cpu-time": rng.randrange(1, 10_000_000),
            "wall-time": rng.randrange(1, 20_000_000),
            "alloc-space": rng.randrange(0, 1 << 20),
            "alloc-samples": rng.randrange(0, 5),
        }
    return encode_profile(RecorderSnapshot(0, 60_000_000_000, out, 0))


def main() -> int:
    path = sys.argv[1]
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 550_000
    data = build(samples)
    with open(path, "wb") as f:
        f.write(gzip.compress(data, 6) if path.endswith(".gz") else data)
    print("%s: %d samples, %.1f MB uncompressed" % (path, samples, len(data) / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
