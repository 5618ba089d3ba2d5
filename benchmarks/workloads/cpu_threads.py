"""CPU-bound recursive calls in N threads (default 4) plus the main thread; prints seconds of work.

``python cpu_threads.py [threads] [work]`` — the time is measured inside the
program, so interpreter and profiler start-up are not counted.
"""

import sys
import threading
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def work(rounds):
    for _ in range(rounds):
        fib(20)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    start = time.perf_counter()
    workers = [threading.Thread(target=work, args=(rounds,)) for _ in range(threads)]
    for t in workers:
        t.start()
    work(rounds)
    for t in workers:
        t.join()
    print("%.6f" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
