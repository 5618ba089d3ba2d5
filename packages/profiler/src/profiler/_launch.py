"""What the bootstrap ``sitecustomize`` does inside the launched program."""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib.machinery import PathFinder
from typing import Optional

from profiler.core import Profiler

#: The profiler started by ``profiler-run`` in this process, if any.
profiler: Optional[Profiler] = None


def start_from_environment() -> Optional[Profiler]:
    """Start a profiler if ``DD_PROFILING_ENABLED`` is true (``profiler-run`` sets it unless told otherwise)."""
    global profiler
    from profiler_core.config import load_config

    if not load_config().enabled:
        return None
    profiler = Profiler()
    profiler.start()
    return profiler


def chain_sitecustomize(bootstrap_file: str) -> None:
    """Execute the next ``sitecustomize`` on ``sys.path`` after ours, as Python would have without us."""
    bootstrap_dir = os.path.dirname(os.path.abspath(bootstrap_file))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != bootstrap_dir]
    spec = PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)
