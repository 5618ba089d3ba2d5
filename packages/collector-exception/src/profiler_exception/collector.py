"""The exception collector: sampled counts of raised exceptions by type and raising stack."""

from __future__ import annotations

import _random  # seeded as random.Random is, never blocking; the random module costs ms to import
import sys
import threading

from profiler_core import exiting
from profiler_core._log import get_logger
from profiler_core.interfaces import Collector
from profiler_core.threads import OWN_WORK, PROFILER_THREADS

from profiler_exception import _native

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional

    from profiler_core.config import ProfilerConfig
    from profiler_core.recorder import Recorder

LOG = get_logger("profiler_exception")

HAS_MONITORING = hasattr(sys, "monitoring")
TOOL_NAME = "profiler-exceptions"


def type_name(exc_type: type) -> str:
    """``module.QualName`` of an exception type, ``builtins.`` included, as ddtrace labels it."""
    return "%s.%s" % (exc_type.__module__, exc_type.__qualname__)


MESSAGE_LIMIT = 128
#: The sparsest sampling (one exception in a billion): beyond, the geometric gap's logarithm rounds to 0.
MAX_INTERVAL = 1e9


def message_of(exc: BaseException) -> str:
    """The exception's message from its arguments (not ``str()``, which may run program code), truncated."""
    args = getattr(exc, "args", ())
    if not args:
        return ""
    first = args[0]
    text = first if isinstance(first, str) else repr(first) if isinstance(first, (int, float, bytes)) else type(first).__name__
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


class ExceptionCollector(Collector):
    """Counts raised exceptions with Poisson sampling (one in ``DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL`` on average).

    Each sampled exception counts once in ``exception-samples``, as in ddtrace; the
    sampling rate is recorded in the profile (:meth:`sampling_rates`), from which the
    viewers estimate the true count. Samples are labelled with the exception type, the thread and the raising stack. An exception is counted once, in
    the Python frame where it is raised (by a ``raise`` statement, or by C code
    called from that frame), not again in each frame it propagates through;
    exceptions created but never raised, and those C code raises and clears
    before Python code sees them, are not counted (see ``_native``). CPython
    3.12+: ``sys.monitoring`` RAISE events. 3.10/3.11: the interpreter's C-level
    trace slot, filled in without switching threads to tracing mode; exception
    types are left untouched.
    """

    name = "exception"
    sample_types = ("exception-samples",)

    def __init__(self, recorder: "Recorder", config: "ProfilerConfig") -> None:
        super().__init__(recorder, config)
        self.interval = min(max(1.0, float(config.exception_sampling_interval)), MAX_INTERVAL)
        self._tool: "Optional[int]" = None
        self._running = False
        self._start_new_thread: "Optional[_native.ArmingStartNewThread]" = None
        self._record = _native.SampleRecorder(
            recorder.push,
            self.interval,
            config.max_frames,
            config.exception_collect_message,
            type_name,
            message_of,
            _random.Random().getrandbits(64),
        )
        # Each sampled exception with its moment when the recorder keeps a timeline (a core older
        # than the timeline has no such recorder).
        if getattr(recorder, "timeline", False):
            self._record.enable_timeline()

    @classmethod
    def is_enabled(cls, config: "ProfilerConfig") -> bool:
        """``DD_PROFILING_EXCEPTION_ENABLED``."""
        return config.exception_enabled

    def sampling_rates(self) -> "Dict[str, float]":
        """The fraction of raised exceptions sampled: 1 / the mean interval."""
        return {"exception-samples": 1.0 / self.interval}

    def set_interval(self, mean: float) -> None:
        """Sample one exception in ``mean`` on average from now on."""
        self.interval = min(max(1.0, float(mean)), MAX_INTERVAL)
        _native.set_countdown(self._record.set_interval(self.interval))

    def start(self) -> None:
        """Begin counting."""
        if self._running:
            return
        if HAS_MONITORING:
            self._start_monitoring()
        else:
            _native.arm(self._record, self._record.next_gap(), self._profiler_thread_idents())
            original = threading._start_new_thread  # type: ignore[attr-defined]
            self._start_new_thread = _native.ArmingStartNewThread(original)
            threading._start_new_thread = self._start_new_thread  # type: ignore[attr-defined]
        self._running = True

    @staticmethod
    def _profiler_thread_idents() -> "List[int]":
        # Not a program's thread doing the profiler's work for a moment: it is armed like the others
        # (what it raises meanwhile is left out when sampled).
        return [ident for ident, name in list(PROFILER_THREADS.items()) if name is not OWN_WORK]

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
        _native.arm(self._record, self._record.next_gap())
        mon.register_callback(self._tool, mon.events.RAISE, _native.on_raise)
        mon.set_events(self._tool, mon.events.RAISE)

    def stop(self) -> None:
        """Stop counting and put every hook back."""
        if not self._running:
            return
        self._running = False
        if exiting.is_exiting():
            # The process is ending: stop recording and keep the rest as it is. Giving the
            # sys.monitoring tool back re-instruments every running frame, which crashed uWSGI
            # workers that run Python's exit from a C signal handler.
            _native.disarm(quick=True)
            self._record.drain()
            return
        if HAS_MONITORING and self._tool is not None:
            mon = sys.monitoring
            mon.set_events(self._tool, 0)
            mon.register_callback(self._tool, mon.events.RAISE, None)
            mon.free_tool_id(self._tool)
            self._tool = None
        if self._start_new_thread is not None:
            if threading._start_new_thread is self._start_new_thread:  # type: ignore[attr-defined]
                threading._start_new_thread = self._start_new_thread.original  # type: ignore[attr-defined]
            self._start_new_thread = None
        _native.disarm()
        self._record.drain()

    def after_fork_in_child(self) -> None:
        """Drop the counts and thread labels inherited from the parent: its profile reports them."""
        self._record.discard()

    def snapshot(self) -> None:
        """Push the counts gathered since the last flush into the recorder (and arm threads started meanwhile)."""
        _native.arm_threads(self._profiler_thread_idents())
        self._record.drain()

    def stats(self) -> "Dict[str, float]":
        """Sampling figures: the mean interval, samples lost to errors, and the exception events seen."""
        out = {"interval": self.interval, "errors": float(self._record.errors)}
        out.update({k: float(v) for k, v in _native.event_counts().items()})
        return out
