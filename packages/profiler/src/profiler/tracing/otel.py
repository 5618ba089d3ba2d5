"""Trace correlation with the OpenTelemetry SDK (``opentelemetry-sdk``), however the program sets
up its ``TracerProvider``.

Two things are followed, from when the SDK is imported (now or later):

- Which span is current, where: the context's runtime (``opentelemetry.context``'s
  ``_RUNTIME_CONTEXT``, contextvars-based, so per thread and per asyncio task) is wrapped, and
  after each ``attach``/``detach`` the span now current in the calling thread or task is linked
  there.
- Each span's request: a span processor added to every SDK ``TracerProvider`` (those made later,
  by wrapping its ``__init__``, and the global one if it is already there) records each span's
  local root (the first span of the trace in this process: no parent, or a remote one) when it
  starts, and when a local root SERVER span ends, its endpoint: ``http.route`` with the method
  (``http.request.method``, or the older ``http.method``), else the span's name.

Samples then carry ``span id``, ``local root span id`` (the 64-bit OpenTelemetry ids), and for
a SERVER root ``trace type`` ``web`` and, once it ended, ``trace endpoint``, as ddtrace labels
its requests.
"""

from __future__ import annotations

import sys
import weakref

from profiler_core import trace_context
from profiler_core.import_hook import PostImportHook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

CONTEXT = "opentelemetry.context"
SDK = "opentelemetry.sdk.trace"
MAX_OPEN_SPANS = 100_000  # spans started and not ended whose request is remembered


class _SpanRoots:
    """A span processor: which request (local root span) each open span belongs to, and the
    endpoint of each local root SERVER span that ends."""

    def __init__(self) -> None:
        # span id -> (root id, trace type, sample labels), while the span is open
        self.roots: "Dict[int, Tuple[int, Optional[str], Any]]" = {}
        self.enabled = True  # False once the profiler stops: a provider keeps its processors

    def on_start(self, span: "Any", parent_context: "Any" = None) -> None:
        if not self.enabled:
            return
        try:
            span_id = span.get_span_context().span_id
            parent = span.parent
            root = self.roots.get(parent.span_id) if parent is not None and not parent.is_remote else None
            if root is not None:
                root_id, trace_type = root[0], root[1]
            else:
                root_id, trace_type = span_id, "web" if _is_server(span) else None
            if len(self.roots) < MAX_OPEN_SPANS:
                self.roots[span_id] = (root_id, trace_type, trace_context.span_labels(span_id, root_id, trace_type))
        except Exception:
            pass

    def on_end(self, span: "Any") -> None:
        if not self.enabled:
            return
        try:
            span_id = span.get_span_context().span_id
            root = self.roots.pop(span_id, None)
            trace_context.span_finished(span_id)
            if root is not None and root[0] == span_id and root[1] == "web":
                trace_context.request_finished(span_id, _endpoint(span))
        except Exception:
            pass

    def labels_of(self, span_id: int) -> "Any":
        """The sample labels of open span ``span_id`` (its own root when it was not seen start)."""
        root = self.roots.get(span_id)
        return root[2] if root is not None else trace_context.span_labels(span_id, span_id, None)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # SDKs from 1.37 call these on processors that have them.
    def _on_ending(self, span: "Any") -> None:
        pass


def _is_server(span: "Any") -> bool:
    kind = getattr(span, "kind", None)
    return getattr(kind, "name", None) == "SERVER"


def _endpoint(span: "Any") -> str:
    attributes = getattr(span, "attributes", None) or {}
    route = attributes.get("http.route")
    if route:
        method = attributes.get("http.request.method") or attributes.get("http.method")
        return "%s %s" % (method, route) if method else str(route)
    return str(span.name)


class _RuntimeContext:
    """Wraps the SDK's runtime context: after each attach and detach, the span now current in the
    calling thread or task is linked there."""

    def __init__(self, inner: "Any", roots: _SpanRoots, span_key: str) -> None:
        self.inner = inner
        self.roots = roots
        self.span_key = span_key  # where a context holds its current span
        # asked for more often than attach and detach together: the runtime's own, no wrapper
        self.get_current = inner.get_current

    def attach(self, context: "Any") -> "Any":
        token = self.inner.attach(context)
        self._follow(context)
        return token

    def detach(self, token: "Any") -> None:
        self.inner.detach(token)
        try:
            self._follow(self.inner.get_current())
        except Exception:
            pass

    def _follow(self, context: "Any") -> None:
        try:
            span = context.get(self.span_key) if context is not None else None
            if span is None:
                trace_context.unlink()
                return
            span_context = span.get_span_context()
            span_id = span_context.span_id
            if span_id and not span_context.is_remote:
                trace_context.link(span_id, self.roots.labels_of(span_id))
            else:
                trace_context.unlink()
        except Exception:
            pass

    def __getattr__(self, name: str) -> "Any":
        return getattr(self.inner, name)


# One processor per process, added once to each provider, enabled while the profiler follows.
_ROOTS = _SpanRoots()
_PROVIDERS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _add_processor(provider: "Any") -> None:
    if provider not in _PROVIDERS:
        provider.add_span_processor(_ROOTS)
        _PROVIDERS.add(provider)


class _Following:
    """The wrapped runtime context and provider constructor (or the import hooks waiting)."""

    def __init__(self) -> None:
        self.roots = _ROOTS
        _ROOTS.enabled = True
        self.hooks: "List[PostImportHook]" = []
        self.context_module: "Any" = None
        self.wrapped_runtime: "Optional[_RuntimeContext]" = None
        self.provider_class: "Any" = None
        self.original_init: "Any" = None

    def wrap_context(self, module: "Any") -> None:
        from opentelemetry.trace.propagation import _SPAN_KEY  # the SDK's API package, imported with it

        runtime = getattr(module, "_RUNTIME_CONTEXT", None)
        if runtime is None or isinstance(runtime, _RuntimeContext):
            return
        self.context_module = module
        self.wrapped_runtime = _RuntimeContext(runtime, self.roots, _SPAN_KEY)
        module._RUNTIME_CONTEXT = self.wrapped_runtime
        trace_context.active = True

    def wrap_sdk(self, module: "Any") -> None:
        provider_class = getattr(module, "TracerProvider", None)
        if provider_class is None or self.provider_class is not None:
            return
        original = provider_class.__init__

        def __init__(provider: "Any", *args: "Any", **kwargs: "Any") -> None:
            original(provider, *args, **kwargs)
            try:
                _add_processor(provider)
            except Exception:
                pass

        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        self.provider_class, self.original_init = provider_class, original
        provider_class.__init__ = __init__
        # A provider the program made before: the global one.
        api = sys.modules.get("opentelemetry.trace")
        current = getattr(api, "_TRACER_PROVIDER", None) if api is not None else None
        if isinstance(current, provider_class):
            _add_processor(current)
        context = sys.modules.get(CONTEXT)
        if context is not None:
            self.wrap_context(context)

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()
        if self.context_module is not None and self.context_module._RUNTIME_CONTEXT is self.wrapped_runtime:
            self.context_module._RUNTIME_CONTEXT = self.wrapped_runtime.inner  # type: ignore[union-attr]
        if self.provider_class is not None:
            self.provider_class.__init__ = self.original_init
        # A processor already added to a provider stays there, doing nothing from now on.
        self.roots.enabled = False
        self.roots.roots.clear()


def follow(tracer: "Any" = None) -> "Optional[_Following]":
    """Follow the OpenTelemetry SDK from now on, or from when it is imported; returns what
    :meth:`remove` stops. ``tracer`` is ddtrace's and does not apply here."""
    following = _Following()
    sdk = sys.modules.get(SDK)
    if sdk is not None:
        following.wrap_sdk(sdk)
    else:
        hook = PostImportHook(SDK, following.wrap_sdk)
        hook.install()
        following.hooks.append(hook)
    return following
