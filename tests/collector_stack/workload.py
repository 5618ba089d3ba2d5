"""Known-split workloads for accuracy tests: a() and b() burn CPU, c() sleeps; time spent is measured."""

import threading
import time
from collections import defaultdict

A_SECONDS, B_SECONDS, C_SECONDS = 0.070, 0.030, 0.050


def burn(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def a():
    burn(A_SECONDS)


def b():
    burn(B_SECONDS)


def c():
    time.sleep(C_SECONDS)


def deep(n, event):
    """Recurse ``n`` calls deep, then wait for ``event``: a thread with a known stack depth."""
    if n == 0:
        event.wait()
    else:
        deep(n - 1, event)


class Truth:
    """Wall and CPU seconds actually spent in a, b and c, per thread name."""

    def __init__(self):
        self.wall = defaultdict(lambda: defaultdict(float))
        self.cpu = defaultdict(lambda: defaultdict(float))
        self._lock = threading.Lock()

    def run(self, rounds):
        name = threading.current_thread().name
        for _ in range(rounds):
            for fn in (a, b, c):
                w0, c0 = time.perf_counter(), time.thread_time()
                fn()
                with self._lock:
                    self.wall[name][fn.__name__] += time.perf_counter() - w0
                    self.cpu[name][fn.__name__] += time.thread_time() - c0

    def wall_pct(self, name):
        total = sum(self.wall[name].values())
        return {k: 100.0 * v / total for k, v in self.wall[name].items()}

    def cpu_pct_ab(self, name):
        d = self.cpu[name]
        return {k: 100.0 * d[k] / (d["a"] + d["b"]) for k in ("a", "b")}


def profile_shares(samples, sample_type, thread_name):
    """Percent of ``sample_type`` in a, b, c (each counted if on the stack) for one thread, and raw totals."""
    totals = {"a": 0, "b": 0, "c": 0}
    for (stack, labels), values in samples.items():
        if dict(labels).get("thread name") != thread_name:
            continue
        names = {f.function for f in stack}
        for fn in totals:
            if fn in names:
                totals[fn] += values.get(sample_type, 0)
    total = sum(totals.values()) or 1
    return {k: 100.0 * v / total for k, v in totals.items()}, totals
