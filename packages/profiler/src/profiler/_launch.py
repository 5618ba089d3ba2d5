"""What the bootstrap ``sitecustomize`` does inside the launched program."""

from __future__ import annotations

import atexit
import os
import sys
from importlib._bootstrap import module_from_spec  # what importlib.util re-exports; importlib.util costs ms
from importlib.machinery import PathFinder
TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import List, Optional

    from profiler.core import Profiler

#: ``profiler-run`` sets this to the pid of the program it starts: only that process announces its profiles.
ANNOUNCE_VARIABLE = "PROFILER_RUN_PID"

#: The profiler started by ``profiler-run`` in this process, if any.
profiler: "Optional[Profiler]" = None


def start_from_environment() -> "Optional[Profiler]":
    """Start a profiler if ``DD_PROFILING_ENABLED`` is true (``profiler-run`` sets it unless told otherwise)."""
    global profiler
    from profiler_core.config import load_config

    config = load_config()
    if not config.enabled:
        return None
    if config.output_pprof and os.environ.get(ANNOUNCE_VARIABLE) == str(os.getpid()):
        # Registered before the profiler's own exit hook, so it runs after the last flush.
        atexit.register(announce_profiles, config.output_pprof)
    from profiler.core import Profiler

    profiler = Profiler(config=config)
    profiler.start()
    return profiler


def announce_profiles(prefix: str) -> None:
    """Tell where this process's profiles are and how to look at them (at exit of a ``profiler-run`` program)."""
    if os.environ.get(ANNOUNCE_VARIABLE) != str(os.getpid()):
        return  # a forked child (a server's worker) inherited the hook: the launched process announces
    files = own_profiles(prefix, os.getpid())
    if not files:
        return
    pattern = "%s.%d.*.pprof" % (prefix, os.getpid())
    sys.stderr.write(
        "profiler: %d profile%s written to %s\nprofiler: view them with: profiler top %s\n"
        "profiler: or as a flame graph: profiler flamegraph %s -o flamegraph.html\n"
        % (len(files), "" if len(files) == 1 else "s", os.path.dirname(prefix), pattern, pattern)
    )


def own_profiles(prefix: str, pid: int) -> "List[str]":
    """The files ``PREFIX.PID.*.pprof`` that process ``pid`` wrote, sorted (as glob would find them;
    glob and the re it imports cost 5-7 ms of the program's exit)."""
    directory, base = os.path.split(prefix)
    start = "%s.%d." % (base, pid)
    try:
        names = os.listdir(directory or os.curdir)
    except OSError:
        return []
    return sorted(
        os.path.join(directory, name)
        for name in names
        if name.startswith(start) and name.endswith(".pprof") and len(name) > len(start) + len(".pprof") - 1
    )


def chain_sitecustomize(bootstrap_file: str) -> None:
    """Execute the next ``sitecustomize`` on ``sys.path`` after ours, as Python would have without us."""
    from profiler_core.threads import own_work

    with own_work():  # looking for it is the launcher's work; running it is the program's
        bootstrap_dir = os.path.dirname(os.path.abspath(bootstrap_file))
        path = [p for p in sys.path if os.path.abspath(p or os.curdir) != bootstrap_dir]
        spec = PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)
