"""Exception collector overhead on a raise/catch loop, at the default sampling interval and with sampling off.

``python benchmarks/exception_overhead.py [interval]`` (run it with each interpreter: the path
differs before and after CPython 3.12). Interleaved repetitions, medians.
"""

from __future__ import annotations

import statistics
import sys
import time

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_exception.collector import HAS_MONITORING, ExceptionCollector


def raise_loop(n: int) -> float:
    began = time.perf_counter()
    for _ in range(n):
        try:
            raise ValueError("x")
        except ValueError:
            pass
    return time.perf_counter() - began


def main() -> None:
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 100.0
    n, reps = 200_000, 15
    collector = ExceptionCollector(Recorder(), ProfilerConfig(exception_enabled=True, exception_sampling_interval=interval))
    plain, profiled = [], []
    for _ in range(reps):
        plain.append(raise_loop(n))
        collector.start()
        profiled.append(raise_loop(n))
        collector.stop()
    p, q = statistics.median(plain) / n * 1e9, statistics.median(profiled) / n * 1e9
    path = "sys.monitoring RAISE" if HAS_MONITORING else "trace slot"
    print("CPython %s (%s), interval %g: %.1f ns plain, %.1f ns profiled per raise/catch, ratio %.3f"
          % (sys.version.split()[0], path, interval, p, q, q / p))


if __name__ == "__main__":
    main()
