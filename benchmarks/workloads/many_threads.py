"""100 threads, each alternating a little CPU work and a short sleep; prints seconds of work."""

import sys
import threading
import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def worker(rounds):
    for _ in range(rounds):
        fib(15)
        time.sleep(0.001)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(rounds,)) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    print("%.6f" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
