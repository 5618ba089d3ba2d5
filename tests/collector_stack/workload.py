"""Known-split workloads for accuracy tests: a() and b() burn CPU, c() sleeps; time spent is measured.

Nominal phases are 70/30/50 ms; ``scale`` stretches all three (the tests use longer phases than the
benchmark, see tests/collector_stack/test_accuracy.py). Each thread also measures how long it waited
for a CPU while it ran (``cpu_wait_share``): how busy the machine was, from the kernel's own count.
"""

import threading
import time
from collections import defaultdict

A_SECONDS, B_SECONDS, C_SECONDS = 0.070, 0.030, 0.050


def burn(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def a(scale=1.0):
    burn(A_SECONDS * scale)


def b(scale=1.0):
    burn(B_SECONDS * scale)


def c(scale=1.0):
    time.sleep(C_SECONDS * scale)


def run_queue_wait_ns():
    """Nanoseconds this thread has spent runnable but waiting for a CPU (Linux schedstat), or None."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def deep(n, event):
    """Recurse ``n`` calls deep, then wait for ``event``: a thread with a known stack depth."""
    if n == 0:
        event.wait()
    else:
        deep(n - 1, event)


class Truth:
    """Wall and CPU seconds actually spent in a, b and c, per thread name."""

    def __init__(self, scale=1.0):
        self.scale = scale
        self.wall = defaultdict(lambda: defaultdict(float))
        self.cpu = defaultdict(lambda: defaultdict(float))
        self.cpu_wait = {}  # thread name -> share of its run spent waiting for a CPU, None if unknown
        self._lock = threading.Lock()

    def run(self, rounds):
        name = threading.current_thread().name
        wait0, start = run_queue_wait_ns(), time.perf_counter()
        for _ in range(rounds):
            for fn in (a, b, c):
                w0, c0 = time.perf_counter(), time.thread_time()
                fn(self.scale)
                with self._lock:
                    self.wall[name][fn.__name__] += time.perf_counter() - w0
                    self.cpu[name][fn.__name__] += time.thread_time() - c0
        wait1, elapsed = run_queue_wait_ns(), time.perf_counter() - start
        known = wait0 is not None and wait1 is not None and elapsed > 0
        self.cpu_wait[name] = (wait1 - wait0) / 1e9 / elapsed if known else None

    def busiest_cpu_wait(self):
        """The largest share of its run any thread waited for a CPU; None if a thread could not tell."""
        shares = list(self.cpu_wait.values())
        return None if not shares or None in shares else max(shares)

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


def serve_short_requests(seconds, burst, gap, started=None):
    """A thread pool's worker serving requests of ``burst`` seconds of CPU, one every ``gap`` on
    average (0.6-1.4x at random), for ``seconds`` (a web server's thread under light load);
    ``started()`` is called once the worker exists. Returns the CPU seconds the worker spent in
    ``handler`` and in all (its whole CPU clock): ``{"handler": ..., "total": ...}``."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    measured = {"handler": 0.0}

    def handler():
        c0 = time.thread_time()
        end = time.perf_counter() + burst
        while time.perf_counter() < end:
            pass
        measured["handler"] += time.thread_time() - c0

    def total():
        measured["total"] = time.thread_time()

    pool = ThreadPoolExecutor(1, thread_name_prefix="pool")
    pool.submit(lambda: None).result()
    if started is not None:
        started()
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        pool.submit(handler)
        time.sleep(random.uniform(0.6, 1.4) * gap)
    pool.submit(total).result()
    pool.shutdown()
    return measured
