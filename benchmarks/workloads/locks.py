"""``with lock: pass`` in a tight loop; prints seconds of work.

``python locks.py lock|rlock THREADS OPS``: THREADS threads (1: uncontended, in the main
thread) each enter and leave one shared lock OPS times. The lock is created after start-up,
so a profiler that patches ``threading`` profiles it.
"""

import sys
import threading
import time


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "lock"
    nthreads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    ops = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    lock = threading.Lock() if kind == "lock" else threading.RLock()

    def work():
        for _ in range(ops):
            with lock:
                pass

    start = time.perf_counter()
    if nthreads == 1:
        work()
    else:
        threads = [threading.Thread(target=work) for _ in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print("%.6f" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
