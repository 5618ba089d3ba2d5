"""A WSGI service with endpoints of known CPU cost, traced by ddtrace's tracer or by the stock
OpenTelemetry SDK (``TRACED_BY=ddtrace|otel``), for the trace-correlation tests.

Each endpoint measures the CPU time it spends (the ground truth the profile's per-endpoint shares
are checked against); ``GET /stats`` returns those sums, in nanoseconds, by path.
"""

import json
import os
import threading
import time

COSTS_MS = {"/light": 2, "/medium": 5, "/heavy": 10}
_used = {}
_lock = threading.Lock()


def burn(ms):
    end = time.thread_time() + ms / 1000.0
    x = 0
    while time.thread_time() < end:
        x += 1
    return x


def handle(path):
    began = time.thread_time_ns()
    burn(COSTS_MS[path])
    used = time.thread_time_ns() - began
    with _lock:
        _used[path] = _used.get(path, 0) + used


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stats":
        with _lock:
            body = json.dumps(_used).encode()
    elif path in COSTS_MS:
        handle(path)
        body = b"ok"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no"]
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def otel_app(wsgi_app):
    """A SERVER span per request with the OpenTelemetry SDK, as its WSGI instrumentation makes it:
    named ``GET``, with ``http.route`` and ``http.request.method``, current while the server
    writes the response and ended when it closes it; a ``handler`` span inside."""
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("traced_app")

    class Response:
        def __init__(self, body, span, token):
            self.body, self.span, self.token = body, span, token

        def __iter__(self):
            return iter(self.body)

        def close(self):
            context.detach(self.token)
            self.span.end()

    def wrapped(environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        span = tracer.start_span(method, kind=trace.SpanKind.SERVER,
                                 attributes={"http.request.method": method, "http.route": path})
        token = context.attach(trace.set_span_in_context(span))
        with tracer.start_as_current_span("handler"):
            body = wsgi_app(environ, start_response)
        return Response(body, span, token)

    return wrapped


if os.environ.get("TRACE_CORRELATION") == "off":  # benchmarks/traced_service.py: the profiler alone
    from profiler import tracing

    tracing.stop()


def __getattr__(name):
    # gunicorn's ``traced_app:application``, made on first use: the tests import COSTS_MS from here
    # without either tracer installed.
    if name != "application":
        raise AttributeError(name)
    global application
    if os.environ.get("TRACED_BY", "ddtrace") == "ddtrace":
        from ddtrace.contrib.wsgi import DDWSGIMiddleware

        application = DDWSGIMiddleware(app)
    else:
        application = otel_app(app)
    return application
