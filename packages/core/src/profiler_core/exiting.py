"""Whether the process is on its way out: the profiler's last stop runs from its exit paths.

The facade marks it (:func:`mark`) before the stop it makes at interpreter exit,
SIGTERM or a multiprocessing child's end. A collector's ``stop()`` then does
only what the last profile needs and skips putting back what only a process
that goes on would use: at that moment other threads may still run, and in
some servers (uWSGI) the exit itself runs from a C signal handler, where a heavy
operation on the interpreter's state (``sys.monitoring.set_events``
re-instrumenting every running frame) can crash.
"""

from __future__ import annotations

_exiting = False


def mark() -> None:
    """Say the process is exiting (never undone: a process that exits does not come back)."""
    global _exiting
    _exiting = True


def is_exiting() -> bool:
    """Whether :func:`mark` was called in this process."""
    return _exiting
