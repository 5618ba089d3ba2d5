"""profiler: a continuous profiler for Python services, drop-in for ddtrace's.

``from profiler import Profiler; Profiler(service="api").start()`` profiles the
process with every installed collector; ``profiler-run python app.py`` does the
same without code changes.
"""

__version__ = "0.1.0"

__all__ = ["Profiler", "__version__"]


def __getattr__(name: str) -> object:
    # Imported on first use, so that ``profiler-run`` (profiler.run) starts fast.
    if name == "Profiler":
        from profiler.core import Profiler

        return Profiler
    raise AttributeError("module 'profiler' has no attribute %r" % name)
