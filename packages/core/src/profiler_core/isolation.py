"""Running plugin code (collectors, exporters) so that one failing never stops the others nor the host."""

from __future__ import annotations

import _signal

from profiler_core._log import RateLimit, get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterable, Optional

LOG = get_logger("profiler_core")


def plugin_name(plugin: object) -> str:
    """A plugin's ``name``, or its class name when it has none."""
    return getattr(plugin, "name", "") or type(plugin).__name__


def call_each(
    plugins: "Iterable[object]",
    action: "Callable[[object], object]",
    what: str,
    failures: "Optional[Dict[str, int]]" = None,
    limit: "Optional[RateLimit]" = None,
) -> None:
    """``action(plugin)`` for each plugin in turn; a failure is skipped, counted in ``failures`` (by plugin
    name) and logged with its traceback ("<name> failed <what>"); with a ``limit``, at most once a minute for
    the same plugin and action: a plugin failing every period does not fill the program's stderr."""
    for plugin in plugins:
        try:
            action(plugin)
        except Exception:
            name = plugin_name(plugin)
            if failures is not None:
                failures[name] = failures.get(name, 0) + 1
            if limit is None:
                LOG.exception("%s failed %s", name, what)
            else:
                LOG.limited(limit, "%s %s" % (name, what), "%s failed %s", name, what, exc_info=True, level="error")


_PROGRAM_SIGNALS = {getattr(_signal, name) for name in ("SIGTERM", "SIGINT") if hasattr(_signal, name)}


def leave_signals_to_the_program() -> None:
    """Block SIGTERM and SIGINT in the calling profiler thread (and the native threads it starts).

    A Python signal handler runs on the main thread, and a signal the kernel hands to another thread
    does not interrupt the main thread's blocking call: a profiler thread taking SIGTERM could leave
    a main thread waiting on a lock with the handler never run. Blocked here, the signal goes to the
    program's threads, as without a profiler.
    """
    if not _PROGRAM_SIGNALS or not hasattr(_signal, "pthread_sigmask"):
        return
    try:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _PROGRAM_SIGNALS)
    except (OSError, ValueError):
        pass
