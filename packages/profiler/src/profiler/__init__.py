"""profiler: a continuous profiler for Python services, drop-in for ddtrace's.

``from profiler import Profiler; Profiler(service="api").start()`` profiles the
process with every installed collector; ``profiler-run python app.py`` does the
same without code changes.
"""

from profiler.core import Profiler

__version__ = "0.1.0"

__all__ = ["Profiler", "__version__"]
