"""Trace correlation with ddtrace's tracer, for a service that keeps ddtrace for tracing.

ddtrace's context provider announces every activation on its event hub
(``ddtrace.context_provider.activate``, with the provider and the span or context now active in
the calling thread or task) and every finished span (``trace.span_finish``); ddtrace's own
profiler listens to the same two events. A sample then carries ``span id``, ``local root span
id`` and ``trace type`` as ddtrace's would, a finished request (a local root span of type
``web``) gives its samples ``trace endpoint`` (its resource) and counts in ``endpoint_counts``,
and the uploads carry the tracer's ``runtime-id``.
"""

from __future__ import annotations

import sys

from profiler_core import trace_context
from profiler_core.import_hook import PostImportHook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

HUB = "ddtrace.internal.core"
ACTIVATE = "ddtrace.context_provider.activate"
FINISH = "trace.span_finish"
# Where ddtrace keeps a distributed request's local root span id and type in a Context's meta.
_ROOT_KEY = "_dd.profiling.local_root_span_id"
_TYPE_KEY = "_dd.profiling.span_type"
MAX_OPEN_SPANS = 100_000  # open spans whose labels are kept for their next activation


class _Following:
    """The listeners registered on ddtrace's event hub (or the import hook waiting for it)."""

    def __init__(self, tracer: "Any") -> None:
        self.tracer = tracer
        self.hub: "Any" = None
        self.hook: "Optional[PostImportHook]" = None
        self.provider: "Any" = None
        self.listeners: "tuple" = ()
        self.labels: "dict" = {}  # span id -> labels, while the span is open

    def attach(self, hub: "Any") -> None:
        self.hub = hub
        # One bound method each, given to on() and to reset_listeners() alike (the hub tells
        # listeners apart by the object).
        self.listeners = ((ACTIVATE, self.on_activate), (FINISH, self.on_finish))
        for event, listener in self.listeners:
            hub.on(event, listener)
        trace_context.active = True
        trace_context.tracer_runtime_id = _runtime_id

    def remove(self) -> None:
        if self.hook is not None:
            self.hook.remove()
        if self.hub is not None:
            for event, listener in self.listeners:
                try:
                    self.hub.reset_listeners(event, listener)
                except Exception:
                    pass
            self.hub = None
        trace_context.tracer_runtime_id = None

    def _tracer_provider(self) -> "Any":
        if self.provider is None:
            tracer = self.tracer
            if tracer is None:
                module = sys.modules.get("ddtrace.trace") or sys.modules.get("ddtrace")
                tracer = getattr(module, "tracer", None)
            self.provider = getattr(tracer, "context_provider", None)
        return self.provider

    def on_activate(self, provider: "Any", active: "Any") -> None:
        # Called by ddtrace in the thread (and task) that activates: must never raise into it.
        try:
            if provider is not self.provider and provider is not self._tracer_provider():
                return  # another context provider's (LLM Observability's), not the tracer's
            span_id = getattr(active, "span_id", None)  # None: no span active now
            if not span_id:
                trace_context.unlink()
                return
            labels = self.labels.get(span_id)  # a parent activated again once its child finished
            if labels is None:
                labels = self.labels[span_id] = _labels_of(active, span_id)
                if len(self.labels) > MAX_OPEN_SPANS:
                    self.labels.clear()
            trace_context.link(span_id, labels)
        except Exception:
            pass

    def on_finish(self, span: "Any") -> None:
        try:
            span_id = span.span_id
            self.labels.pop(span_id, None)
            trace_context.span_finished(span_id)
            if span.span_type == "web" and getattr(span, "_local_root", None) is span:
                resource = span.resource
                if isinstance(resource, bytes):
                    resource = resource.decode("utf-8", "backslashreplace")
                trace_context.request_finished(span_id, str(resource))
        except Exception:
            pass


def _labels_of(active: "Any", span_id: int) -> "Any":
    # The sample labels of span or context `active`, as ddtrace's profiler links them.
    root = getattr(active, "_local_root", None)
    if root is None:  # a Context: the request's root as ddtrace recorded it there
        root_id, root_type = _propagated_root(active)
        return trace_context.span_labels(span_id, root_id or span_id, root_type)
    if getattr(active, "_parent", None) is None and getattr(active, "parent_id", None):
        # Made with child_of=Context (a distributed request): its root as the Context says
        parent_context = getattr(active, "_parent_context", None)
        if parent_context is not None:
            root_id, root_type = _propagated_root(parent_context)
            return trace_context.span_labels(span_id, root_id or root.span_id, root_type or root.span_type)
    return trace_context.span_labels(span_id, root.span_id, root.span_type)


def _propagated_root(context: "Any") -> "tuple":
    meta = getattr(context, "_meta", None) or {}
    raw = meta.get(_ROOT_KEY)
    try:
        root_id = int(raw, 16) if raw else None
    except (TypeError, ValueError):
        root_id = None
    return root_id, meta.get(_TYPE_KEY)


def _runtime_id() -> "Optional[str]":
    # ddtrace's runtime-id (its traces carry it; a new one in a forked child), once ddtrace has it.
    runtime = sys.modules.get("ddtrace.internal._runtime_id") or sys.modules.get("ddtrace.internal.runtime")
    get = getattr(runtime, "get_runtime_id", None)
    return get() if get is not None else None


def follow(tracer: "Any" = None) -> "Optional[_Following]":
    """Follow ddtrace's tracer from now on, or from when ddtrace is imported; returns what
    :meth:`remove` stops. ``tracer``: the tracer given to ``Profiler(tracer=)``, if any."""
    following = _Following(tracer)
    hub = sys.modules.get(HUB)
    if hub is not None:
        following.attach(hub)
    else:
        following.hook = PostImportHook(HUB, following.attach)
        following.hook.install()
    return following
