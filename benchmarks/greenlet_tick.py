"""Cost of one stack sampler tick with N gevent greenlets waiting (``python benchmarks/greenlet_tick.py 100 1000``).

Prints, per N, the CPU time of sampling the suspended greenlets (the stack collector's task hook)
and of one whole capture-and-samples tick, medians of 50 ticks.
"""

from gevent import monkey

monkey.patch_all()

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from profiler_core.config import ProfilerConfig  # noqa: E402
from profiler_core.recorder import Recorder  # noqa: E402
from profiler_stack.collector import StackCollector  # noqa: E402


def waiter(depth):
    if depth:
        return waiter(depth - 1)
    gevent.sleep(3600)


def measure(n, ticks=50):
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig())
    collector.greenlets.start()
    greenlets = [gevent.spawn(waiter, 10) for _ in range(n)]
    gevent.sleep(0.05)  # every greenlet switched to once, so tracked, and now waiting
    hook, capture = [], []
    for _ in range(ticks):
        collector._waiting_next = 0.0  # one walk of the greenlets each time (not paced to the budget)
        began = time.thread_time_ns()
        collector._sample_waiting(recorder.push, 10_000_000, {}, 64)
        hook.append(time.thread_time_ns() - began)
        capture_ns, samples_ns = collector.sampler.capture_once()
        capture.append(capture_ns + samples_ns)
    recorder.flush()
    gevent.killall(greenlets)
    collector.greenlets.stop()
    return statistics.median(hook), statistics.median(capture)


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [100, 1000]:
        hook_ns, tick_ns = measure(n)
        print("%5d greenlets: suspended greenlets %7.0f us, capture + thread samples %6.0f us" % (n, hook_ns / 1e3, tick_ns / 1e3))
