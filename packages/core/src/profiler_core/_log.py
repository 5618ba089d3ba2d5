"""Loggers that import :mod:`logging` only when first used, a rate limit for repeated problems, a debug switch.

``logging`` (with ``re``, ``traceback``...) costs several milliseconds to import;
a profiler started in every process must not add that to a program that never
logs. ``get_logger(name)`` returns a stand-in forwarding to the real logger.

Nothing is imported outside the main thread, though: an import in a background
thread holds a module lock that a fork at that moment leaves held forever in the
child. There, while the program has not imported ``logging``, a warning or error
is one line on stderr (what ``logging`` would print with no handler configured).
"""

from __future__ import annotations

import _thread
import sys
import time

from profiler_core.threads import PROFILER_THREADS, forget_dummy_thread

TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Any, Dict

#: The top-level loggers of the profiler's distributions (``DD_TRACE_DEBUG`` turns all of them to debug).
PACKAGE_LOGGERS = (
    "profiler",
    "profiler_core",
    "profiler_agent",
    "profiler_stack",
    "profiler_lock",
    "profiler_memory",
    "profiler_exception",
)

#: Seconds between two log lines about the same repeated problem (unless debugging).
LOG_EVERY = 60.0

_debug = False


class RateLimit:
    """When each problem (by key) was last logged, to log a repeated one at most once per ``every`` seconds.

    Each object that can repeat a problem holds its own, so two exporters (or two
    tests) never silence each other.
    """

    __slots__ = ("every", "_last")

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.every = every
        self._last: "Dict[str, float]" = {}

    def allow(self, key: str) -> bool:
        """Whether problem ``key`` may be logged now (then it is counted as logged); always with DD_TRACE_DEBUG."""
        now = time.monotonic()
        last = self._last.get(key)
        if not _debug and last is not None and now - last < self.every:
            return False
        self._last[key] = now
        return True


class LazyLogger:
    """Forwards every attribute to ``logging.getLogger(name)``, created on first use.

    ``debug`` and ``info`` do nothing while the program has not imported
    ``logging`` itself: nothing can have configured a handler that would show them.
    ``limited`` logs a repeated problem as often as a :class:`RateLimit` allows.
    """

    __slots__ = ("_name", "_logger")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger = None

    def debug(self, *args: Any, **kwargs: Any) -> None:
        if self._logger is not None or "logging" in sys.modules:
            self.__getattr__("debug")(*args, **kwargs)
            _hide_profiler_thread()

    def info(self, *args: Any, **kwargs: Any) -> None:
        if self._logger is not None or "logging" in sys.modules:
            self.__getattr__("info")(*args, **kwargs)
            _hide_profiler_thread()

    def warning(self, *args: Any, **kwargs: Any) -> None:
        self.__getattr__("warning")(*args, **kwargs)
        _hide_profiler_thread()

    def error(self, *args: Any, **kwargs: Any) -> None:
        self.__getattr__("error")(*args, **kwargs)
        _hide_profiler_thread()

    def exception(self, *args: Any, **kwargs: Any) -> None:
        self.__getattr__("exception")(*args, **kwargs)
        _hide_profiler_thread()

    def limited(
        self, limit: "RateLimit", key: str, message: str, *args: Any, exc_info: bool = False, level: str = "warning"
    ) -> bool:
        """Log ``message`` (at ``level``) if ``limit`` allows problem ``key`` now; returns whether it was logged."""
        if not limit.allow(key):
            return False
        self.__getattr__(level)(message, *args, exc_info=exc_info)
        return True

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            if "logging" not in sys.modules and not _in_main_thread():
                return getattr(_StderrLogger, attr)
            import logging

            logger = logging.getLogger(self._name)
            if not any(isinstance(f, _HideProfilerThread) for f in logger.filters):
                logger.addFilter(_HideProfilerThread())
            self._logger = logger
        return getattr(logger, attr)


class _HideProfilerThread:
    """A logging filter that lets every record through, once the profiler thread that made it is out
    of ``threading._active`` again (before the handlers run, so the program cannot see it there)."""

    def filter(self, record: object) -> bool:
        _hide_profiler_thread()
        return True


def _hide_profiler_thread() -> None:
    # logging asked threading.current_thread() for the record's thread name, which registers a
    # profiler thread as a _DummyThread that the program would see in threading.enumerate().
    if PROFILER_THREADS:
        forget_dummy_thread()


def _in_main_thread() -> bool:
    threading = sys.modules.get("threading")
    return threading is None or threading.main_thread().ident == _thread.get_ident()


class _StderrLogger:
    """The stand-in's stand-in in a background thread while ``logging`` is not imported: one line on stderr."""

    @staticmethod
    def _write(msg: object, *args: object, **kwargs: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
            if kwargs.get("exc_info"):
                exc = sys.exc_info()[1]
                if exc is not None:
                    text += ": %s: %s" % (type(exc).__name__, exc)
            sys.stderr.write(text + "\n")
        except Exception:
            pass

    @staticmethod
    def exception(msg: object, *args: object, **kwargs: Any) -> None:
        kwargs["exc_info"] = True
        _StderrLogger._write(msg, *args, **kwargs)

    warning = error = critical = _write

    @staticmethod
    def isEnabledFor(level: int) -> bool:
        return level >= 30

    @staticmethod
    def debug(*args: object, **kwargs: Any) -> None:
        pass

    info = debug


def get_logger(name: str) -> LazyLogger:
    """A logger for ``name`` that costs nothing until something is logged."""
    return LazyLogger(name)


def debug_enabled() -> bool:
    """Whether :func:`enable_debug` was called (``DD_TRACE_DEBUG``)."""
    return _debug


def enable_debug() -> None:
    """Show the profiler's debug lines on stderr, as ``DD_TRACE_DEBUG`` does for ddtrace (idempotent).

    Each package logger gets a stderr handler at DEBUG level and stops propagating,
    so a line is printed once whatever the program's own logging configuration.
    Repeated problems are then logged every time.
    """
    global _debug
    if _debug:
        return
    _debug = True
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    for name in PACKAGE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False
