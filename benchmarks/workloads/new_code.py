"""A service that keeps meeting new code: each request runs a freshly compiled function (as template
engines, ORMs and ``exec``-built handlers do), which allocates, takes a lock and now and then raises.

``python new_code.py SECONDS [REQUESTS_PER_SECOND]`` runs two threads at that pace and prints the
requests made. Every stack the profiler sees is new: its tables of code, names and stacks meet the
worst case for staying bounded.
"""

import sys
import threading
import time

lock = threading.Lock()
kept = []

TEMPLATE = """
def handler_{n}(depth):
    if depth:
        return handler_{n}(depth - 1)
    rows = [{{"id": i, "name": "row-{n}-%d" % i}} for i in range(40)]
    with lock:
        kept.append(rows)
        if len(kept) > 64:
            del kept[:32]
    if {n} % 7 == 0:
        try:
            raise ValueError("request {n}")
        except ValueError:
            pass
    return len(rows)
"""


def worker(first: int, step: int, until: float, pace: float, counts: list) -> None:
    n = first
    while time.monotonic() < until:
        namespace = {"lock": lock, "kept": kept}
        exec(compile(TEMPLATE.format(n=n), "<generated-%d>" % n, "exec"), namespace)
        namespace["handler_%d" % n](n % 5)
        n += step
        counts[first] += 1
        time.sleep(pace)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 400.0
    until = time.monotonic() + seconds
    counts = [0, 0]
    threads = [threading.Thread(target=worker, args=(i, 2, until, 2.0 / rate, counts)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(sum(counts))


if __name__ == "__main__":
    main()
