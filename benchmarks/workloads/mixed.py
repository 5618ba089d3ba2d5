"""A request-like mix: recursion, small allocations, a shared lock, an occasional exception.

``python mixed.py [requests]`` runs the requests on 4 threads and prints seconds of work.
"""

import sys
import threading
import time

cache_lock = threading.Lock()
cache = {}


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def handle(i):
    payload = [{"id": j, "value": str(j)} for j in range(20)]
    with cache_lock:
        cache[i % 512] = payload
    try:
        if i % 50 == 0:
            raise KeyError(i)
    except KeyError:
        pass
    return fib(12) + len(payload)


def main():
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    per_thread = requests // 4

    def worker():
        for i in range(per_thread):
            handle(i)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("%.6f" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
