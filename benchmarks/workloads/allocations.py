"""Millions of small dicts and lists, built and dropped in batches; prints seconds of work.

``python allocations.py [batches]``: each batch builds 100,000 small dicts and lists
(about 30 MB allocated) and keeps a tenth of them until the next batch, so the heap
both grows and shrinks.
"""

import sys
import time


def build(n):
    out = []
    for i in range(n):
        d = {"id": i, "name": "item", "tags": [i, i + 1]}
        if i % 10 == 0:
            out.append(d)
    return out


def main():
    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    start = time.perf_counter()
    kept = None
    for _ in range(batches):
        kept = build(100_000)
    print("%.6f" % (time.perf_counter() - start))
    return kept


if __name__ == "__main__":
    main()
