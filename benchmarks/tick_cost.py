"""Cost of one stack-sampler tick as a function of threads x stack depth (run in the benchmark env)."""

import json
import sys
import threading
import time

from profiler_core.recorder import Recorder
from profiler_stack._sampler import StackSampler


def deep(n, event):
    if n == 0:
        event.wait()
    else:
        deep(n - 1, event)


def measure(threads, depth, ticks=200):
    release = threading.Event()
    workers = [threading.Thread(target=deep, args=(depth, release)) for _ in range(threads)]
    for t in workers:
        t.start()
    time.sleep(0.05)
    recorder = Recorder()
    sampler = StackSampler(recorder.push, 64)
    sampler.sample()
    began = time.perf_counter()
    for _ in range(ticks):
        sampler.sample()
    elapsed = (time.perf_counter() - began) / ticks
    release.set()
    for t in workers:
        t.join()
    return elapsed


def main():
    rows = []
    for threads in (1, 10, 100):
        for depth in (10, 60):
            rows.append({"threads": threads, "depth": depth, "tick_us": measure(threads, depth) * 1e6})
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
