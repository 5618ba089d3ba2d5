"""The exception collector: sampled counts of raised exceptions by type and raising stack."""

from __future__ import annotations

import random
import sys
import threading

from profiler_core._log import get_logger
from profiler_core.interfaces import Collector

from profiler_exception import _native

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional

    from profiler_core.config import ProfilerConfig
    from profiler_core.recorder import Recorder

LOG = get_logger("profiler_exception")

HAS_MONITORING = hasattr(sys, "monitoring")
CONTROL_FLOW = (StopIteration, StopAsyncIteration, GeneratorExit)
# Never hooked: created when memory or stack is exhausted, when running any Python code is unwise.
UNHOOKABLE = (MemoryError, RecursionError)
TOOL_NAME = "profiler-exceptions"


def type_name(exc_type: type) -> str:
    """``module.QualName`` of an exception type, ``builtins.`` included, as ddtrace labels it."""
    return "%s.%s" % (exc_type.__module__, exc_type.__qualname__)


MESSAGE_LIMIT = 128


def message_of(exc: BaseException) -> str:
    """The exception's message from its arguments (not ``str()``, which may run program code), truncated."""
    args = getattr(exc, "args", ())
    if not args:
        return ""
    first = args[0]
    text = first if isinstance(first, str) else repr(first) if isinstance(first, (int, float, bytes)) else type(first).__name__
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def exception_types() -> "List[type]":
    """Every exception type that exists now, control-flow ones excluded."""
    found, todo, seen = [], [BaseException], set()
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        try:
            todo.extend(type.__subclasses__(t))
        except TypeError:
            continue
        if not issubclass(t, CONTROL_FLOW):
            found.append(t)
    return found


def uses_c_constructor(t: type) -> bool:
    """Whether ``t`` is created by a C ``tp_new`` (not a ``__new__`` written in Python, which calls its base's)."""
    new = t.__dict__.get("__new__")
    return new is None or type(new).__name__ == "builtin_function_or_method"


class ExceptionCollector(Collector):
    """Counts raised exceptions with Poisson sampling (one in ``DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL`` on average).

    Each sampled exception is pushed with weight equal to the mean interval, so
    ``exception-samples`` estimates the true count, labelled with the exception
    type, the thread and the raising stack. CPython 3.12+: ``sys.monitoring``
    RAISE events. Before: a native hook on exception constructors (it sees what
    Python code creates; an exception that C code raises and that nobody looks
    at is never created before 3.12, and is not seen).
    """

    name = "exception"
    sample_types = ("exception-samples",)

    def __init__(self, recorder: "Recorder", config: "ProfilerConfig") -> None:
        super().__init__(recorder, config)
        self.interval = max(1.0, float(config.exception_sampling_interval))
        self._tool: "Optional[int]" = None
        self._running = False
        self._record = _native.SampleRecorder(
            recorder.push,
            self.interval,
            config.max_frames,
            config.exception_collect_message,
            type_name,
            message_of,
            random.getrandbits(64),
        )

    @classmethod
    def is_enabled(cls, config: "ProfilerConfig") -> bool:
        """``DD_PROFILING_EXCEPTION_ENABLED`` (default false, as in ddtrace)."""
        return config.exception_enabled

    def set_interval(self, mean: float) -> None:
        """Sample one exception in ``mean`` on average from now on."""
        self.interval = max(1.0, float(mean))
        _native.set_countdown(self._record.set_interval(self.interval))

    def start(self) -> None:
        """Begin counting."""
        if self._running:
            return
        if HAS_MONITORING:
            self._start_monitoring()
        else:
            types = [t for t in exception_types() if uses_c_constructor(t) and not issubclass(t, UNHOOKABLE)]
            _native.install(types, self._record, self._record.next_gap())
        self._running = True

    def _start_monitoring(self) -> None:
        mon = sys.monitoring
        for tool in (mon.PROFILER_ID, 3, 4):
            try:
                mon.use_tool_id(tool, TOOL_NAME)
            except ValueError:
                continue
            self._tool = tool
            break
        if self._tool is None:
            raise RuntimeError("no free sys.monitoring tool id for the exception profiler")
        _native.set_raise_sampling(self._record, self._record.next_gap())
        mon.register_callback(self._tool, mon.events.RAISE, _native.on_raise)
        mon.set_events(self._tool, mon.events.RAISE)

    def stop(self) -> None:
        """Stop counting and put every hook back."""
        if not self._running:
            return
        self._running = False
        if HAS_MONITORING and self._tool is not None:
            mon = sys.monitoring
            mon.set_events(self._tool, 0)
            mon.register_callback(self._tool, mon.events.RAISE, None)
            mon.free_tool_id(self._tool)
            self._tool = None
            _native.set_raise_sampling(None, 1)
        else:
            still = [t for t in exception_types() if _native.is_hooked(t)]
            _native.uninstall(still)
        self._record.drain()

    def snapshot(self) -> None:
        """Push the counts gathered since the last flush into the recorder."""
        self._record.drain()

    def stats(self) -> "Dict[str, float]":
        """Sampling figures: the mean interval, and samples lost to errors."""
        return {"interval": self.interval, "errors": float(self._record.errors)}
