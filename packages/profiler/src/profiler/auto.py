"""``import profiler.auto`` starts a profiler configured from the environment.

Like ``ddtrace.profiling.auto``: importing it starts profiling at once,
whatever ``DD_PROFILING_ENABLED`` says. The running profiler is ``profiler.auto.profiler``;
when one already runs in the process (``profiler-run``), that one, and no second is started.
"""

import os

from profiler.core import Profiler, running_profiler

profiler = Profiler()
profiler.start()  # one warning line, and nothing started, when a profiler runs already
profiler = running_profiler() or profiler
_pid = os.getpid()


def start_profiler() -> Profiler:
    """Make sure this process profiles, as ``ddtrace.profiling.auto.start_profiler()``.

    Datadog's documentation has forked workers call it: a process that already
    profiles (this module's profiler, kept across the fork, or ``profiler-run``'s)
    keeps that profiler; one that does not gets a new one started. Returns the
    running profiler.
    """
    global profiler, _pid
    running = running_profiler()
    if running is not None:
        profiler = running
    elif profiler.status != "running" or _pid != os.getpid():
        profiler = Profiler()
        profiler.start()
    _pid = os.getpid()
    return profiler
