"""Trace correlation: tie samples to the spans of the tracer the program uses.

Each integration follows one tracer's span lifecycle, without any change to the program, and
reports it to :mod:`profiler_core.trace_context`, which the collectors read. Neither tracer is a
dependency: an integration starts when its tracer is imported, now or later.
"""

from __future__ import annotations

from profiler_core import trace_context
from profiler_core._log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List

    from profiler_core.config import ProfilerConfig

LOG = get_logger("profiler.tracing")

# Imported with the profiler, never when starting it: a forked child may start it (uWSGI workers).
from profiler.tracing import ddtrace_tracer, otel  # noqa: E402

_hooks: "List[Any]" = []


def start(config: "ProfilerConfig", tracer: "Any" = None) -> None:
    """Follow ddtrace's tracer (``tracer``, or ``ddtrace.tracer``) and the OpenTelemetry SDK,
    whichever the program imports. Never raises."""
    trace_context.endpoints_enabled = bool(config.endpoint_collection_enabled)
    for integration in (ddtrace_tracer, otel):
        try:
            hook = integration.follow(tracer)
            if hook is not None:
                _hooks.append(hook)
        except Exception:
            LOG.debug("profiler: could not follow %s", integration.__name__, exc_info=True)


def stop() -> None:
    """Stop following the tracers; samples carry no span labels from now on."""
    while _hooks:
        hook = _hooks.pop()
        try:
            hook.remove()
        except Exception:
            LOG.debug("profiler: could not stop following a tracer", exc_info=True)
    trace_context.reset()
