"""Raise and catch in a tight loop; prints seconds of work. ``python exceptions.py [iterations]``."""

import sys
import time


def parse(value):
    try:
        raise ValueError(value)
    except ValueError:
        return None


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    start = time.perf_counter()
    for i in range(n):
        parse(i)
    print("%.6f" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
