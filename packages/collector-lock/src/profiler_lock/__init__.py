"""pyprof-dd-collector-lock: sampled acquire-wait and hold times of threading and asyncio locks.

The collector (``profiler_lock.collector.LockCollector``, entry point ``lock``)
replaces ``threading.Lock``/``RLock`` with the C types of ``profiler_lock._lock``
and ``asyncio.Lock``/``Semaphore``/``BoundedSemaphore`` with the subclasses of
``profiler_lock.asyncio_locks`` while it runs.
"""

__version__ = "0.1.0"
