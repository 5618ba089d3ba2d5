"""``import profiler.auto`` starts a profiler configured from the environment.

Like ``ddtrace.profiling.auto``: importing it starts profiling at once,
whatever ``DD_PROFILING_ENABLED`` says. The running profiler is ``profiler.auto.profiler``.
"""

from profiler.core import Profiler

profiler = Profiler()
profiler.start()
