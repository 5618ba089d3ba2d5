"""CPU cost of profiling N waiting asyncio tasks, side by side with ddtrace: ``python benchmarks/task_sampling.py``.

Each run starts N tasks waiting on an event, then measures the whole process's CPU over a window
in which the program does nothing: plain, under ``profiler-run`` and under ``ddtrace-run``, both
with only their stack (wall/CPU) collector. Prints CPU use as a percentage of one core, medians
of interleaved repetitions, for N = 0, 2,000 and 10,000 (or the N given as arguments).
"""

import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import configs_for, ensure_env, interleave, run_reported  # noqa: E402

WORKLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads", "idle_tasks.py")


def main() -> None:
    counts = [int(a) for a in sys.argv[1:]] or [0, 2000, 10000]
    python = ensure_env()
    reps, seconds = 3, 5.0
    print("CPU use over %.0f s of an idle program with N waiting asyncio tasks (%% of one core, median of %d)" % (seconds, reps))
    print("%7s %8s %9s %8s" % ("tasks", "plain", "profiler", "ddtrace"))
    for n in counts:
        with tempfile.TemporaryDirectory() as out:
            configs = configs_for(python, [python, WORKLOAD, str(n), str(seconds)], out)
            results = interleave(configs, reps, lambda spec: run_reported(*spec))
        med = {name: 100 * statistics.median(values) for name, values in results.items()}
        print("%7d %7.2f%% %8.2f%% %7.2f%%" % (n, med["plain"], med["profiler"], med["ddtrace"]))


if __name__ == "__main__":
    main()
