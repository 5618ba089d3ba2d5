"""Profiled ``asyncio.Lock``, ``asyncio.Semaphore`` and ``asyncio.BoundedSemaphore``.

Subclasses of the originals that share the native locks' sampling countdown:
an unsampled ``acquire`` returns the original coroutine untouched (no extra
frame), a sampled one measures the wait; a release matching a sampled acquire
(the same task, for semaphores) records the hold time.
"""

from __future__ import annotations

from asyncio import locks as _locks
from asyncio import tasks as _tasks

from profiler_lock import _lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict

# The originals, taken when this module is first imported, before the collector patches asyncio.locks.
_Lock = _locks.Lock
_Semaphore = _locks.Semaphore
_BoundedSemaphore = _locks.BoundedSemaphore
# A semaphore forgets sampled acquires beyond this many unreleased ones (a task that never releases).
MAX_HELD = 1024
# Bound once: the per-acquire path looks up one global instead of an attribute of a module. The
# original methods are still looked up on the class at each call, as a program patching them expects.
_take_sample = _lock.take_sample


def _current_task():
    try:
        return _tasks.current_task()
    except RuntimeError:
        return None


class Lock(_Lock):
    """``asyncio.Lock`` with sampled acquire-wait and hold profiling."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._profiler_site = _lock.creation_site()
        self._profiler_acquired_at = 0

    def acquire(self):
        """Acquire the lock (a coroutine, as the original's)."""
        if not _take_sample():
            return _Lock.acquire(self)
        return self._sampled_acquire()

    async def _sampled_acquire(self):
        start = _lock.now_ns()
        result = await _Lock.acquire(self)
        _lock.record(True, self._profiler_site, self, _lock.now_ns() - start, 1)
        self._profiler_acquired_at = _lock.now_ns()
        return result

    def release(self) -> None:
        """Release the lock; RuntimeError if it is not locked, as the original."""
        held_since = self._profiler_acquired_at
        if not held_since:  # not a sampled acquire: nothing to record (most releases)
            return _Lock.release(self)
        now = _lock.now_ns()
        _Lock.release(self)
        self._profiler_acquired_at = 0
        _lock.record(False, self._profiler_site, self, now - held_since, 0)


class _ProfiledSemaphore:
    """The profiling shared by both semaphore types; mixed in before the original class."""

    _profiler_base: type

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._profiler_site = _lock.creation_site()
        self._profiler_held: "Dict[object, int]" = {}

    def acquire(self):
        """Acquire the semaphore (a coroutine, as the original's)."""
        if not _take_sample():
            return self._profiler_base.acquire(self)
        return self._sampled_acquire()

    async def _sampled_acquire(self):
        start = _lock.now_ns()
        result = await self._profiler_base.acquire(self)
        _lock.record(True, self._profiler_site, self, _lock.now_ns() - start, 1)
        held = self._profiler_held
        if len(held) < MAX_HELD:
            held[_current_task()] = _lock.now_ns()
        return result

    def release(self) -> None:
        """Release the semaphore, as the original (BoundedSemaphore: ValueError when released too often)."""
        held = self._profiler_held
        held_since = held.pop(_current_task(), 0) if held else 0
        now = _lock.now_ns() if held_since else 0
        self._profiler_base.release(self)
        if held_since:
            _lock.record(False, self._profiler_site, self, now - held_since, 0)


class Semaphore(_ProfiledSemaphore, _Semaphore):
    """``asyncio.Semaphore`` with sampled acquire-wait and (same task) hold profiling."""

    _profiler_base = _Semaphore


class BoundedSemaphore(_ProfiledSemaphore, _BoundedSemaphore):
    """``asyncio.BoundedSemaphore`` with sampled acquire-wait and (same task) hold profiling."""

    _profiler_base = _BoundedSemaphore


PROFILED = {"Lock": Lock, "Semaphore": Semaphore, "BoundedSemaphore": BoundedSemaphore}
