"""Memory collector overhead on an allocation-heavy loop, in one process, at the default sample size.

``python benchmarks/memory_overhead.py [reps]``: interleaved repetitions of the
allocations workload (100,000 small dicts and lists per batch, a tenth kept until
the next batch) without and with the collector; medians and their ratio. The
side-by-side figure with ddtrace is in bench.py; this one isolates the hooks.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads"))

from allocations import build  # noqa: E402
from profiler_core.config import ProfilerConfig  # noqa: E402
from profiler_core.recorder import Recorder  # noqa: E402
from profiler_memory.collector import MemoryCollector  # noqa: E402


def work(batches: int) -> float:
    began = time.perf_counter()
    kept = None
    for _ in range(batches):
        kept = build(100_000)
    del kept
    return time.perf_counter() - began


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    batches = 5
    collector = MemoryCollector(Recorder(), ProfilerConfig())
    plain, profiled = [], []
    work(batches)  # warm up the allocator's arenas
    for _ in range(reps):
        plain.append(work(batches))
        collector.start()
        profiled.append(work(batches))
        collector.stop()
    p, q = statistics.median(plain), statistics.median(profiled)
    print("CPython %s: %.1f ms plain, %.1f ms profiled per %d batches, ratio %.3f"
          % (sys.version.split()[0], p * 1e3, q * 1e3, batches, q / p))


if __name__ == "__main__":
    main()
