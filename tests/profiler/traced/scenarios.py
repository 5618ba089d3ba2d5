"""Traced programs for the trace-correlation tests, run under ``profiler-run`` with the peers'
interpreter: ``python scenarios.py NAME``. Each prints one JSON line: the ids of its spans."""

import asyncio
import json
import os
import sys
import threading
import time


def burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def in_child(seconds):
    burn(seconds)


def after_finish(seconds):
    burn(seconds)


def in_inner(seconds):
    burn(seconds)


def in_root(seconds):
    burn(seconds)


async def take_turns(lock=None):
    """Burn CPU in 4 ms turns for a second, letting the other tasks run between turns (holding
    ``lock`` while they do, if given)."""
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        burn(0.004)
        if lock is None:
            await asyncio.sleep(0)
        else:
            async with lock:
                await asyncio.sleep(0)


def run_two_requests(request):
    """Run ``request("a")`` and ``request("b")`` as tasks task-a and task-b of one event loop."""
    async def main():
        await asyncio.gather(asyncio.create_task(request("a"), name="task-a"),
                             asyncio.create_task(request("b"), name="task-b"))

    asyncio.run(main())


def otel_tracer():
    """The OpenTelemetry API module and a tracer of a stock SDK TracerProvider, set as the global one."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    return trace, trace.get_tracer("scenarios")


def ddtrace_tasks():
    from ddtrace.trace import tracer

    ids = {}
    lock = asyncio.Lock()

    async def request(name):
        with tracer.trace("request", resource="GET /" + name, span_type="web") as span:
            ids[name] = span.span_id
            await take_turns(lock)

    run_two_requests(request)
    return ids


def otel_tasks():
    trace, tracer = otel_tracer()
    ids = {}

    async def request(name):
        with tracer.start_as_current_span("GET", kind=trace.SpanKind.SERVER,
                                          attributes={"http.request.method": "GET", "http.route": "/" + name}) as span:
            ids[name] = span.get_span_context().span_id
            await take_turns()

    run_two_requests(request)
    return ids


def ddtrace_nested():
    from ddtrace.trace import tracer

    with tracer.trace("root", resource="GET /nested", span_type="web") as root:
        with tracer.trace("inner") as inner:
            in_inner(0.4)
        in_root(0.4)
    # finished on another thread: the thread that was in it is in no span afterwards
    span = tracer.start_span("background", activate=True)
    finisher = threading.Thread(target=span.finish)
    finisher.start()
    finisher.join()
    after_finish(0.4)
    return {"root": root.span_id, "inner": inner.span_id, "background": span.span_id}


def otel_nested():
    trace, tracer = otel_tracer()
    with tracer.start_as_current_span("GET", kind=trace.SpanKind.SERVER,
                                      attributes={"http.request.method": "GET", "http.route": "/nested"}) as root:
        with tracer.start_as_current_span("inner") as inner:
            in_inner(0.4)
        in_root(0.4)
    after_finish(0.4)
    return {"root": root.get_span_context().span_id, "inner": inner.get_span_context().span_id}


def ddtrace_fork():
    from ddtrace.trace import tracer

    with tracer.trace("parent", resource="GET /fork", span_type="web") as span:
        pid = os.fork()
        if pid == 0:
            in_child(0.4)
            sys.exit(0)  # the child's profile is written at its exit
        os.waitpid(pid, 0)
    return {"span": span.span_id, "child": pid}


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()), flush=True)
