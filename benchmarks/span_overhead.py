"""What trace correlation adds to each span: a request span with one child, started, activated,
finished, under ddtrace's tracer and under the OpenTelemetry SDK, with and without this project
following the tracer (``profiler.tracing``), in one process, interleaved repetitions, medians.

Run it with an interpreter that has ddtrace and opentelemetry-sdk (the tests' peers environment,
``~/.cache/profiler-tests/peers-py311``) and this project on ``PYTHONPATH``::

    PYTHONPATH=packages/core/src:packages/profiler/src ~/.cache/profiler-tests/peers-py311/bin/python benchmarks/span_overhead.py

Prints ns per request (two spans) for each tracer alone and followed, and the median of the
difference within each alternating pair of runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("DD_TRACE_AGENT_URL", "http://127.0.0.1:9")  # nothing listens: traces are dropped
os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")

from profiler import tracing  # noqa: E402
from profiler_core.config import ProfilerConfig  # noqa: E402

N, REPS = 2_000, 61


def ddtrace_requests():
    from ddtrace.trace import tracer

    def run(n):
        trace = tracer.trace
        began = time.perf_counter()
        for _ in range(n):
            with trace("request", resource="GET /x", span_type="web"):
                with trace("child"):
                    pass
        return time.perf_counter() - began

    return run


def otel_requests():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("bench")
    server = trace.SpanKind.SERVER
    attributes = {"http.request.method": "GET", "http.route": "/x"}

    def run(n):
        start = tracer.start_as_current_span
        began = time.perf_counter()
        for _ in range(n):
            with start("GET", kind=server, attributes=attributes):
                with start("child"):
                    pass
        return time.perf_counter() - began

    return run


def measure(name, make):
    run = make()
    run(2000)  # warm up
    plain, followed, added = [], [], []
    for _ in range(REPS):
        # short runs, alternating: the machine's speed drifts over seconds (the same program's
        # plain runs varied 30-50 us per request from one minute to the next), each pair is
        # compared within itself
        a = run(N)
        tracing.start(ProfilerConfig())
        b = run(N)
        tracing.stop()
        plain.append(a)
        followed.append(b)
        added.append(b - a)
    p, f = statistics.median(plain) / N * 1e9, statistics.median(followed) / N * 1e9
    d = statistics.median(added) / N * 1e9
    q = statistics.quantiles(added, n=4)
    print("%-8s %8.0f ns per request alone, %8.0f followed: +%.0f ns per request (+%.0f per span; "
          "pairs' IQR %.0f..%.0f), %.3fx" % (name, p, f, d, d / 2, q[0] / N * 1e9, q[2] / N * 1e9, f / p), flush=True)


if __name__ == "__main__":
    print("CPython %s, %d requests of 2 spans, %d interleaved repetitions" % (sys.version.split()[0], N, REPS))
    for name in sys.argv[1:] or ["otel", "ddtrace"]:
        measure(name, otel_requests if name == "otel" else ddtrace_requests)
