"""A thread pool's worker serving short CPU-bound requests between waits (a web server's thread).

``python short_requests.py SECONDS BURST_MS GAP_MS TRUTH_FILE``: submits a request of BURST_MS of CPU
every GAP_MS on average (0.6-1.4x at random) for SECONDS, then writes to TRUTH_FILE, as JSON, the
CPU seconds the worker spent in ``handler`` and in all.
"""

import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    seconds, burst, gap = float(sys.argv[1]), float(sys.argv[2]) / 1e3, float(sys.argv[3]) / 1e3
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
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        pool.submit(handler)
        time.sleep(random.uniform(0.6, 1.4) * gap)
    pool.submit(total).result()
    pool.shutdown()
    with open(sys.argv[4], "w") as f:
        json.dump(measured, f)


if __name__ == "__main__":
    main()
