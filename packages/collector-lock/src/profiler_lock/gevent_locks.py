"""Profiled locks for programs under ``gevent.monkey.patch_all()``.

After patching, ``threading.Lock`` is gevent's ``LockType`` (blocking switches
greenlets instead of the OS thread) and ``threading.RLock`` builds threading's
Python ``_RLock`` over it. The profiled types keep gevent's locks underneath, so
blocking, timeouts, errors and reentrancy are gevent's own, and share the native
locks' sampling countdown: an unsampled acquire is one extra call, a sampled one
measures the wait, its release the hold.
"""

from __future__ import annotations

import sys
import threading

from profiler_lock import _lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


def patched_lock_type() -> "Optional[type]":
    """gevent's lock type when gevent has patched ``threading`` (``threading.Lock`` is it), else None."""
    gevent_thread = sys.modules.get("gevent.thread")
    lock_type = getattr(gevent_thread, "LockType", None)
    if lock_type is not None and threading.Lock is lock_type:
        return lock_type
    return None


def make_types(lock_type: type) -> "tuple":
    """``(Lock, RLock)``: profiled types over gevent's ``lock_type``."""

    class Lock:
        """gevent's ``threading.Lock`` with sampled acquire-wait and hold profiling; gevent's semantics."""

        __slots__ = ("_profiler_lock", "_profiler_site", "_profiler_acquired_at", "__weakref__")

        def __init__(self) -> None:
            self._profiler_lock = lock_type()
            self._profiler_site = _lock.creation_site()
            self._profiler_acquired_at = 0

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            """Acquire as gevent's lock does (the same errors, the same cooperative wait)."""
            if not _lock.take_sample():
                return self._profiler_lock.acquire(blocking, timeout)
            start = _lock.now_ns()
            acquired = self._profiler_lock.acquire(blocking, timeout)
            if acquired:
                now = _lock.now_ns()
                _lock.record(True, self._profiler_site, self, now - start, 1)
                self._profiler_acquired_at = now
            return acquired

        __enter__ = acquire  # one frame of ours above the caller's, whichever way it is taken

        def release(self) -> None:
            """Release as gevent's lock does (RuntimeError when not locked)."""
            held_since = self._profiler_acquired_at
            self._profiler_lock.release()
            if held_since:
                self._profiler_acquired_at = 0
                _lock.record(False, self._profiler_site, self, _lock.now_ns() - held_since, 1)

        def __exit__(self, *exc: object) -> None:
            self.release()

        def locked(self) -> bool:
            """Whether the lock is held."""
            return self._profiler_lock.locked()

        def _at_fork_reinit(self) -> None:
            self._profiler_lock = lock_type()
            self._profiler_acquired_at = 0

        def __getattr__(self, name: str) -> object:
            return getattr(self._profiler_lock, name)  # gevent's extras (wait, rawlink...)

        def __repr__(self) -> str:
            return "<%s %s profiled>" % ("locked" if self.locked() else "unlocked", type(self._profiler_lock).__name__)

    base = threading._PyRLock  # type: ignore[attr-defined]

    class RLock(base):  # type: ignore[misc, valid-type]
        """threading's ``_RLock`` over gevent's lock (what ``RLock()`` is after patching), profiled on its
        outermost acquire and release."""

        def __init__(self) -> None:
            super().__init__()
            self._profiler_site = _lock.creation_site()
            self._profiler_acquired_at = 0

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            """Acquire, or enter again when the caller holds it."""
            if not _lock.take_sample():
                return base.acquire(self, blocking, timeout)
            start = _lock.now_ns()
            acquired = base.acquire(self, blocking, timeout)
            if acquired and self._count == 1:
                now = _lock.now_ns()
                _lock.record(True, self._profiler_site, self, now - start, 1)
                self._profiler_acquired_at = now
            return acquired

        __enter__ = acquire

        def release(self) -> None:
            """Release once (RuntimeError when the caller does not hold it)."""
            base.release(self)
            held_since = self._profiler_acquired_at
            if held_since and self._count == 0:
                self._profiler_acquired_at = 0
                _lock.record(False, self._profiler_site, self, _lock.now_ns() - held_since, 1)

        def __exit__(self, *exc: object) -> None:
            self.release()

        def _release_save(self) -> object:
            self._profiler_acquired_at = 0  # Condition.wait: the hold ends here, unrecorded
            return base._release_save(self)

    Lock.__qualname__ = Lock.__name__ = "Lock"
    RLock.__qualname__ = RLock.__name__ = "RLock"
    return Lock, RLock
