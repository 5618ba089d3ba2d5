"""Stack collector accuracy on the known-split workload (a/b burn 70/30 ms, c sleeps 50 ms).

Prints, per scenario and thread, the wall and CPU shares the profile gives next
to what the workload measured it spent (perf_counter / thread_time around each
call). ``python benchmarks/stack_accuracy.py [runs] [rounds]``. These are the quiet-machine
figures (70/30/50 ms phases); the test suite checks longer phases, with bounds that hold on a busy
machine too (tests/collector_stack/test_accuracy.py).
"""

from __future__ import annotations

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "collector_stack"))

from profiler_core.config import ProfilerConfig  # noqa: E402
from profiler_core.recorder import Recorder  # noqa: E402
from profiler_stack.collector import StackCollector  # noqa: E402
from workload import Truth, profile_shares  # noqa: E402

#: scenario -> (main thread works, worker works, stacks read without the GIL)
SCENARIOS = {
    "main only": (True, False, True),
    "worker only": (False, True, True),
    "main + worker": (True, True, True),
    "main only, GIL held": (True, False, False),
}


def run(main_works: bool, worker_works: bool, rounds: int, gil_free: bool = True):
    truth = Truth()
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(), gil_free=gil_free)
    collector.start()
    worker = threading.Thread(target=truth.run if worker_works else lambda n: None, args=(rounds,), name="worker")
    worker.start()
    if main_works:
        truth.run(rounds)
    worker.join()
    collector.stop()
    return truth, recorder.flush().samples


def fmt(d):
    return " ".join("%s=%5.1f" % (k, d[k]) for k in sorted(d))


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    worst = {}
    for scenario, (main_works, worker_works, gil_free) in SCENARIOS.items():
        for _ in range(runs):
            truth, samples = run(main_works, worker_works, rounds, gil_free)
            for name in [n for n, on in (("MainThread", main_works), ("worker", worker_works)) if on]:
                wall, _ = profile_shares(samples, "wall-time", name)
                expected = truth.wall_pct(name)
                _, cpu = profile_shares(samples, "cpu-time", name)
                ab = (cpu["a"] + cpu["b"]) or 1
                cpu_pct = {"a": 100.0 * cpu["a"] / ab, "b": 100.0 * cpu["b"] / ab, "c": 100.0 * cpu["c"] / ab}
                err = max(abs(wall[k] - expected[k]) for k in "abc")
                cerr = abs(cpu_pct["a"] - truth.cpu_pct_ab(name)["a"])
                w = worst.setdefault(scenario, [0.0, 0.0, 0.0])
                w[0], w[1], w[2] = max(w[0], err), max(w[1], cerr), max(w[2], cpu_pct["c"])
                print("%-14s %-10s wall got %s | spent %s | cpu a/b got %s spent a=%5.1f" % (
                    scenario, name, fmt(wall), fmt(expected), fmt(cpu_pct), truth.cpu_pct_ab(name)["a"]))
    print()
    print("| scenario | worst wall-share error (points) | worst CPU a-share error | worst CPU in c (% of a+b) |")
    print("|---|---|---|---|")
    for scenario, (e, c, cc) in worst.items():
        print("| %s | %.1f | %.1f | %.1f |" % (scenario, e, c, cc))


if __name__ == "__main__":
    main()
