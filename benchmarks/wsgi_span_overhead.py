"""What following ddtrace's tracer costs a request of its WSGI middleware, in one process: an empty
app (``tests/profiler/traced/traced_app.py``'s, at 0 ms of work) called through
``DDWSGIMiddleware`` with trace correlation off, on, and with listeners that do nothing on the
same two events; interleaved repetitions of 1,000 requests, medians, µs a request. With
``--parts``: the time spent in each of the listeners' calls, wrapped and timed.

Run it with the tests' peers environment (ddtrace) and this project on ``PYTHONPATH``::

    PYTHONPATH=packages/core/src:packages/profiler/src ~/.cache/profiler-tests/peers-py311/bin/python benchmarks/wsgi_span_overhead.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")  # nothing listens: traces are dropped
os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "profiler", "traced"))

import traced_app  # noqa: E402
from ddtrace.contrib.wsgi import DDWSGIMiddleware  # noqa: E402
from ddtrace.internal import core  # noqa: E402

from profiler import tracing  # noqa: E402
from profiler_core.config import ProfilerConfig  # noqa: E402

ACTIVATE, FINISH = "ddtrace.context_provider.activate", "trace.span_finish"
REQUESTS, REPS = 1000, 11

traced_app.COSTS_MS["/zero"] = 0
APP = DDWSGIMiddleware(traced_app.app)


def start_response(status, headers, exc_info=None):
    return lambda data: None


def requests(n: int) -> float:
    """Seconds a request, over ``n`` requests."""
    began = time.perf_counter()
    for _ in range(n):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/zero", "SERVER_NAME": "bench", "SERVER_PORT": "80",
                   "wsgi.url_scheme": "http", "QUERY_STRING": "", "HTTP_HOST": "bench"}
        body = APP(environ, start_response)
        for _chunk in body:
            pass
        if hasattr(body, "close"):
            body.close()
    return (time.perf_counter() - began) / n


def _nothing(*args):
    pass


def measure(mode: str) -> float:
    if mode == "followed":
        tracing.start(ProfilerConfig(), None)
        try:
            return requests(REQUESTS)
        finally:
            tracing.stop()
    if mode == "listeners doing nothing":
        core.on(ACTIVATE, _nothing)
        core.on(FINISH, _nothing)
        try:
            return requests(REQUESTS)
        finally:
            core.reset_listeners(ACTIVATE, _nothing)
            core.reset_listeners(FINISH, _nothing)
    return requests(REQUESTS)


def parts() -> None:
    """Time each listener call of the integration during 3,000 followed requests."""
    from profiler.tracing import ddtrace_tracer
    from profiler_core import trace_context

    spent = {}

    def timed(name, function):
        def wrapper(*args):
            began = time.perf_counter()
            try:
                return function(*args)
            finally:
                acc = spent.setdefault(name, [0.0, 0])
                acc[0] += time.perf_counter() - began
                acc[1] += 1

        return wrapper

    ddtrace_tracer._labels_of = timed("labels of a new span", ddtrace_tracer._labels_of)
    for name in ("link", "unlink", "span_finished", "request_finished"):
        setattr(ddtrace_tracer.trace_context, name, timed(name, getattr(trace_context, name)))
    tracing.start(ProfilerConfig(), None)
    requests(3000)
    tracing.stop()
    for name, (seconds, calls) in spent.items():
        print("%-22s %6d calls, %.2f µs each, %.1f µs a request" % (name, calls, seconds / calls * 1e6, seconds / 3000 * 1e6))


def main() -> None:
    requests(500)  # warm up
    if "--parts" in sys.argv:
        parts()
        return
    results = {"off": [], "followed": [], "listeners doing nothing": []}
    for rep in range(REPS):
        order = list(results) if rep % 2 == 0 else list(results)[::-1]
        for mode in order:
            results[mode].append(measure(mode))
    off = statistics.median(results["off"])
    for mode, values in results.items():
        median = statistics.median(values)
        print("%-24s %7.1f µs a request  (+%.1f)" % (mode, median * 1e6, (median - off) * 1e6))


if __name__ == "__main__":
    main()
