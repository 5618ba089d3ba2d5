"""A closed-loop load generator for ``workloads/web_service.py``: ``python load.py PORT SECONDS [CLIENTS]``.

CLIENTS threads each keep one HTTP/1.1 connection and send requests back to back for
SECONDS; prints one JSON line: requests per second and latency percentiles in ms.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time


def main() -> None:
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    latencies: list = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, i = [], n
        while time.perf_counter() < deadline:
            i += clients
            began = time.perf_counter()
            try:
                conn.request("GET", "/items?id=%d" % i)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise OSError(resp.status)
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append(time.perf_counter() - began)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()

    def pct(p: float) -> float:
        return 1e3 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    print(json.dumps({"rps": len(latencies) / seconds, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "errors": errors[0]}))


if __name__ == "__main__":
    main()
