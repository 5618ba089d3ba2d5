"""Threads that compute and sleep in turns, for the timeline's cost: ``python timeline_threads.py [threads] [seconds]``.

Each of N threads (default 8) alternates 10 ms of computing in one of four functions with 10 ms
of sleep for the given seconds (default 6), so every sample period has many threads with changing
stacks: the worst case for a timeline that keeps each sample on its own. Prints the seconds of work.
"""

import sys
import threading
import time


def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def parse():
    spin(0.01)


def render():
    spin(0.01)


def query():
    spin(0.01)


def encode():
    spin(0.01)


def worker(seconds, offset):
    steps = (parse, render, query, encode)
    end = time.monotonic() + seconds
    i = offset
    while time.monotonic() < end:
        steps[i % len(steps)]()
        time.sleep(0.01)
        i += 1


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(seconds, i), name="worker-%d" % i) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    print(time.perf_counter() - start)


if __name__ == "__main__":
    main()
