"""pyprof-dd-collector-memory: sampled allocations and live heap, through CPython allocator hooks.

The collector (``profiler_memory.collector.MemoryCollector``, entry point
``memory``) drives the native hooks of ``profiler_memory._memalloc``
(``_memhook.h``).
"""

__version__ = "0.1.0"
