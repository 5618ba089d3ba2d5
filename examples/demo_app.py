"""A small service-like program with a known profile, for trying the profiler.

The main thread parses and scores "requests" (CPU), a worker thread waits on
I/O (sleep) and compresses batches (CPU released from the GIL), for about 3 s
(``python demo_app.py [SECONDS]``).
"""

import hashlib
import json
import sys
import threading
import time
import zlib

RUN_SECONDS = 3.0


def parse_request(i):
    return json.loads(json.dumps({"id": i, "items": list(range(50)), "user": "u%d" % (i % 97)}))


def score(request):
    total = 0
    for item in request["items"]:
        total += (item * 31 + request["id"]) % 7
    return total


def handle_requests(deadline):
    handled = 0
    while time.monotonic() < deadline:
        score(parse_request(handled))
        handled += 1
    return handled


def fetch_from_backend():
    time.sleep(0.02)  # stands for a network call
    return hashlib.sha256(b"x" * 4096).digest() * 256


def compress_batch(data):
    return zlib.compress(data * 8, 6)


def background_worker(deadline):
    while time.monotonic() < deadline:
        compress_batch(fetch_from_backend())


def main():
    deadline = time.monotonic() + (float(sys.argv[1]) if len(sys.argv) > 1 else RUN_SECONDS)
    worker = threading.Thread(target=background_worker, args=(deadline,), name="backend-worker")
    worker.start()
    handled = handle_requests(deadline)
    worker.join()
    print("demo app: handled %d requests" % handled)


if __name__ == "__main__":
    main()
