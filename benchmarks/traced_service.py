"""Throughput of a traced web service with and without trace correlation: gunicorn (1 gthread
worker, 4 threads) serving ``tests/profiler/traced/traced_app.py`` through ddtrace's WSGI
middleware or the OpenTelemetry SDK, under ``profiler-run`` with its default collectors, driven
by closed-loop clients on 127.0.0.1; runs alternate (followed, not followed; each first in half
the pairs), medians. Reports
requests per second and, less noisy on a small machine where the clients share the cores, the
worker's CPU time per request.

Needs the tests' peers environment (``tests/exporter_agent/peers.py`` makes it) and this project
installed from the tree (``scripts/install-dev.py``)::

    hatch run test:python benchmarks/traced_service.py [ddtrace|otel] [seconds per run]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
sys.path[:0] = [os.path.join(TESTS, "profiler", "traced"), os.path.join(TESTS, "servers"), TESTS]

from harness import cpu_seconds, descendants  # noqa: E402
from service import Service, TestAgent  # noqa: E402

PATH, CLIENTS, RUNS = "/light", 4, 6


def throughput(service: Service, seconds: float) -> "tuple":
    """Requests per second, and the workers' CPU milliseconds per request."""
    done = []
    stop = time.monotonic() + seconds

    def client():
        n = 0
        while time.monotonic() < stop:
            service.get(PATH)
            n += 1
        done.append(n)

    service.drive(5)  # warm up
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    workers = descendants(service.proc.pid)
    cpu = cpu_seconds(workers)
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    cpu = cpu_seconds(workers) - cpu
    return sum(done) / elapsed, 1000.0 * cpu / sum(done)


def main() -> None:
    traced_by = sys.argv[1] if len(sys.argv) > 1 else "ddtrace"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 8.0
    agent = TestAgent()
    rates = {"followed": [], "not followed": []}
    costs = {"followed": [], "not followed": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(RUNS):
                # ABBA: each mode goes first in half the pairs, so a drift of the machine's speed
                # (or what the previous run left the agent doing) favours neither
                for mode in (list(rates) if run % 2 == 0 else list(rates)[::-1]):
                    env = dict(DD_TRACE_AGENT_URL=agent.url, DD_SERVICE="bench", TRACED_BY=traced_by,
                               DD_INSTRUMENTATION_TELEMETRY_ENABLED="false", DD_REMOTE_CONFIGURATION_ENABLED="false",
                               TRACE_CORRELATION="on" if mode == "followed" else "off")
                    service = Service(tmp, env)
                    try:
                        rate, cost = throughput(service, seconds)
                        rates[mode].append(rate)
                        costs[mode].append(cost)
                    finally:
                        service.stop()
                    agent.clear()
    finally:
        agent.close()
    on, off = statistics.median(rates["followed"]), statistics.median(rates["not followed"])
    cost_on, cost_off = statistics.median(costs["followed"]), statistics.median(costs["not followed"])
    print("%s-traced service, %s (2 ms of CPU), %d clients, %d x %.0f s each way" % (traced_by, PATH, CLIENTS, RUNS, seconds))
    print("requests/s: trace correlation on %.1f, off %.1f: %.2f%% lost (runs on %s, off %s)" % (
        on, off, 100.0 * (off - on) / off, ["%.1f" % r for r in rates["followed"]], ["%.1f" % r for r in rates["not followed"]]))
    print("worker CPU per request: on %.3f ms, off %.3f ms: %.3fx (runs on %s, off %s)" % (
        cost_on, cost_off, cost_on / cost_off, ["%.3f" % c for c in costs["followed"]], ["%.3f" % c for c in costs["not followed"]]))


if __name__ == "__main__":
    main()
