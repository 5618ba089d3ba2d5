"""Cost of one stack-sampler tick as a function of threads x stack depth (run in the benchmark env).

Two ways of reading stacks: with the GIL (the fallback, ``sample()``), and without it
(the default where allowed: the capturing thread's part, then turning the capture into
samples with the GIL, ``capture_once()``); CPU time of each, in microseconds.
"""

import json
import sys
import threading
import time

from profiler_core.recorder import Recorder
from profiler_stack._sampler import StackSampler, can_read_without_gil


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
    began = time.thread_time()
    for _ in range(ticks):
        sampler.sample()
    with_gil = (time.thread_time() - began) / ticks
    capture = samples = 0.0
    if can_read_without_gil():
        sampler.capture_once()
        for _ in range(ticks):
            c, s = sampler.capture_once()
            capture += c / 1e9 / ticks
            samples += s / 1e9 / ticks
    release.set()
    for t in workers:
        t.join()
    return with_gil, capture, samples


def main():
    rows = []
    for threads in (1, 10, 100):
        for depth in (10, 60):
            with_gil, capture, samples = measure(threads, depth)
            rows.append({"threads": threads, "depth": depth, "tick_us": with_gil * 1e6,
                         "capture_us": capture * 1e6, "samples_us": samples * 1e6})
    json.dump(rows, sys.stdout)


if __name__ == "__main__":
    main()
