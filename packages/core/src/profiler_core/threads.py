"""The profiler's own threads: real OS threads that the program's ``threading`` module never lists.

A program may join every thread in ``threading.enumerate()``, wait for
``threading.active_count() == 1``, or have ``gevent.monkey.patch_all()`` turn
``threading.Thread`` into a greenlet. The profiler's threads are therefore
started with ``_thread.start_new_thread`` as it was before any gevent patching,
are not registered in ``threading._active`` (so neither listed, nor joined at
interpreter exit), and wait only on locks that block the OS thread. Their idents
are in :data:`PROFILER_THREADS`, for the samplers to leave them out.
"""

from __future__ import annotations

import _thread
import os as _os
import sys
import threading
import time

TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

#: OS thread ident -> name, for every profiler thread running now.
PROFILER_THREADS: "Dict[int, str]" = {}
#: Called (no arguments, with the GIL) whenever PROFILER_THREADS changes, by the thread that
#: changed it: collectors that leave the profiler's threads out without the GIL keep a copy.
THREAD_LISTENERS: "List[Callable[[], object]]" = []


def _threads_changed() -> None:
    # By index, not over a copy: a listener may be what tells a hook to stop counting this
    # thread's allocations, so nothing is allocated before it runs.
    i = 0
    while i < len(THREAD_LISTENERS):
        try:
            THREAD_LISTENERS[i]()
        except Exception:
            pass  # a listener's own failure must not end a profiler thread
        i += 1

_get_native_id = getattr(_thread, "get_native_id", None)


def _original(name: str) -> object:
    """``_thread.<name>`` as it was before gevent's monkey-patching (as it is when gevent patched nothing)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            return monkey.get_original("_thread", name)
        except Exception:
            pass
    return getattr(_thread, name)


def allocate_lock() -> "_thread.LockType":
    """A lock that blocks the OS thread, whatever gevent patched: the profiler's threads are OS threads."""
    return _original("allocate_lock")()  # type: ignore[operator]


def get_ident() -> int:
    """The calling OS thread's ident (gevent's patched ``get_ident`` names the greenlet instead)."""
    return _original("get_ident")()  # type: ignore[operator]


def get_ident_function() -> "Callable[[], int]":
    """The OS thread ident function itself, for callers that call it often (see :func:`get_ident`)."""
    return _original("get_ident")  # type: ignore[return-value]


def is_profiler_thread() -> bool:
    """Whether the calling thread is one of the profiler's."""
    return get_ident() in PROFILER_THREADS


#: The name a program's thread has in PROFILER_THREADS while it does the profiler's work.
OWN_WORK = "profiler-own-work"
#: ident -> [(start, end), ...] in time.monotonic_ns(), the last few own_work() spans of that thread
#: (end 0 while one lasts): for samplers that turn what they captured into samples later.
OWN_WORK_SPANS: "Dict[int, List[Tuple[int, int]]]" = {}
_SPANS_KEPT = 8


def in_own_work(ident: int, when_ns: int) -> bool:
    """Whether thread ``ident`` was doing the profiler's own work at ``when_ns`` (monotonic)."""
    for start, end in OWN_WORK_SPANS.get(ident, ()):
        if start <= when_ns and (end == 0 or when_ns <= end):
            return True
    return False


class own_work:
    """``with own_work():`` the calling thread (a program's thread) counts as one of the
    profiler's while the profiler does its own work in it (starting, restarting after fork):
    the collectors leave out what it allocates, locks and raises meanwhile, as for the
    profiler's threads. Nests; a thread already listed stays listed."""

    __slots__ = ("_ident", "_added")

    def __enter__(self) -> "own_work":
        self._ident = get_ident()
        self._added = self._ident not in PROFILER_THREADS
        if self._added:
            started = time.monotonic_ns()
            PROFILER_THREADS[self._ident] = OWN_WORK
            _threads_changed()
            spans = OWN_WORK_SPANS.setdefault(self._ident, [])
            spans.append((started, 0))
            del spans[:-_SPANS_KEPT]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._added:
            PROFILER_THREADS.pop(self._ident, None)
            spans = OWN_WORK_SPANS.get(self._ident)
            if spans:
                spans[-1] = (spans[-1][0], time.monotonic_ns())
            _threads_changed()


def forget_dummy_thread() -> None:
    """Take the calling profiler thread out of ``threading._active`` again.

    ``threading.current_thread()`` (which ``logging`` calls for every record)
    registers a ``_DummyThread`` for a thread it does not know; from a profiler
    thread that entry would show in ``threading.enumerate()``.
    """
    ident = get_ident()
    if ident not in PROFILER_THREADS:
        return
    active = threading._active  # type: ignore[attr-defined]
    for key in {ident, threading.get_ident()}:
        if isinstance(active.get(key), threading._DummyThread):  # type: ignore[attr-defined]
            active.pop(key, None)


class Event:
    """``threading.Event``'s ``set``/``is_set``/``wait`` on an OS lock (gevent's Event would block a hub)."""

    def __init__(self) -> None:
        self._flag = False
        self._gate = allocate_lock()
        self._gate.acquire()

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if not self._flag:
            self._flag = True
            try:
                self._gate.release()
            except RuntimeError:
                pass

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._flag

    def wait(self, timeout: "Optional[float]" = None) -> bool:
        """Wait until set or ``timeout`` seconds passed; whether it is set."""
        if self._flag:
            return True
        if self._gate.acquire(True, -1 if timeout is None else max(timeout, 0.0)):
            self._gate.release()
        return self._flag


class Condition:
    """``threading.Condition`` over an OS lock, for the profiler's threads and the program's alike.

    ``threading.Condition`` makes each waiter a lock with ``threading``'s
    allocator, which gevent patches; this one keeps to OS locks.
    """

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._waiters: "List[_thread.LockType]" = []

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait(self, timeout: "Optional[float]" = None) -> bool:
        """Release the lock, wait for a notify or ``timeout`` seconds, take the lock again; whether notified."""
        waiter = allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        self._lock.release()
        try:
            notified = waiter.acquire(True, -1 if timeout is None else max(timeout, 0.0))
        finally:
            self._lock.acquire()
        if not notified:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                notified = True  # notified between the timeout and taking the lock
        return notified

    def notify_all(self) -> None:
        """Wake every waiter (call with the lock held)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()


class ProfilerThread:
    """A profiler thread: ``start``, ``is_alive``, ``join`` as ``threading.Thread``'s, without its registry.

    ``target`` runs in a new OS thread (never a greenlet); an exception it lets out
    ends the thread silently (the targets log their own errors). The thread is not
    joined at interpreter exit, like a daemon thread.
    """

    daemon = True  # as threading.Thread's: never waited for at interpreter exit

    def __init__(self, target: "Callable[[], object]", name: str) -> None:
        self.name = name
        self.ident: "Optional[int]" = None
        self.native_id: "Optional[int]" = None
        self._target = target
        self._done: "Optional[_thread.LockType]" = None

    def start(self) -> None:
        """Start the thread (RuntimeError when the interpreter refuses new threads, as at shutdown)."""
        if self._done is not None:
            raise RuntimeError("threads can only be started once")
        done = allocate_lock()
        done.acquire()
        self._done = done
        try:
            _original("start_new_thread")(self._bootstrap, (done, _original("get_ident")))  # type: ignore[operator]
        except BaseException:
            self._done = None
            raise

    def _bootstrap(self, done: "_thread.LockType", get_ident: "Callable[[], int]") -> None:
        registry = PROFILER_THREADS
        ident = get_ident()
        self.ident = ident
        self.native_id = _get_native_id() if _get_native_id is not None else None
        registry[ident] = self.name
        _threads_changed()
        try:
            self._target()
        except BaseException:
            pass  # nothing may print 'Exception ignored in thread started by' at exit
        finally:
            try:
                forget_dummy_thread()
            except BaseException:
                pass
            registry.pop(ident, None)
            try:
                _threads_changed()
            except BaseException:
                pass
            done.release()

    def is_alive(self) -> bool:
        """Started and not finished."""
        done = self._done
        return done is not None and done.locked()

    def join(self, timeout: "Optional[float]" = None) -> bool:
        """Wait for the thread to end, at most ``timeout`` seconds; whether it ended."""
        done = self._done
        if done is None:
            return True
        if get_ident() == self.ident:
            raise RuntimeError("cannot join the current thread")
        if done.acquire(True, -1 if timeout is None else max(timeout, 0.0)):
            done.release()
            return True
        return False


def start_thread(target: "Callable[[], object]", name: str) -> ProfilerThread:
    """Start ``target`` in a new :class:`ProfilerThread` named ``name``."""
    thread = ProfilerThread(target, name)
    thread.start()
    return thread


def after_fork_in_child() -> None:
    """In a forked child only the forking thread lives on: no profiler thread is running there.

    Registered at import, so it runs before the profiler's own after-fork hook starts new threads.
    """
    PROFILER_THREADS.clear()
    _threads_changed()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=after_fork_in_child)


__all__: "Tuple[str, ...]" = (
    "PROFILER_THREADS",
    "THREAD_LISTENERS",
    "own_work",
    "OWN_WORK",
    "OWN_WORK_SPANS",
    "in_own_work",
    "Condition",
    "Event",
    "ProfilerThread",
    "allocate_lock",
    "after_fork_in_child",
    "forget_dummy_thread",
    "get_ident",
    "get_ident_function",
    "is_profiler_thread",
    "start_thread",
)
