"""The lock collector: sampled acquire-wait and hold times of threading and asyncio locks."""

from __future__ import annotations

import _random  # seeded as random.Random is, never blocking; the random module costs ms to import
import os
import sys
import threading

from profiler_core._log import get_logger
from profiler_core.interfaces import Collector

from profiler_lock import _lock, gevent_locks
from profiler_core.import_hook import PostImportHook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

    from profiler_core.config import ProfilerConfig
    from profiler_core.recorder import Recorder

LOG = get_logger("profiler_lock")

_STDLIB = os.path.dirname(threading.__file__)
# Library files whose frames never name a lock: a queue's or a condition's lock is named after the
# code that made the queue or the condition.
LIBRARY_FILES = (
    os.path.join(_STDLIB, "queue.py"),
    os.path.join(_STDLIB, "asyncio", "locks.py"),
    os.path.join(os.path.dirname(_lock.__file__), "asyncio_locks.py"),
)


def interval_for(capture_pct: float) -> float:
    """Mean number of acquires per sample for a capture percentage (100: every acquire)."""
    return 100.0 / capture_pct


class LockCollector(Collector):
    """Profiles ``threading.Lock``/``RLock`` (so ``Condition``, ``Semaphore``, ``queue.Queue``...) and
    ``asyncio.Lock``/``Semaphore``/``BoundedSemaphore`` created while it runs.

    ``DD_PROFILING_CAPTURE_PCT`` percent of acquires are sampled (Poisson, default
    1%); each sample records ``lock-acquire``/``lock-acquire-wait`` and, at the
    matching release, ``lock-release``/``lock-release-hold``, weighted to estimate
    totals, labelled ``lock name`` (creation site ``file:line`` and the variable it
    is bound to) and the thread, with the caller's stack. ``stop`` puts the
    original types back; locks created meanwhile keep working, unprofiled. Under
    ``gevent.monkey.patch_all()`` (before or after ``start``) gevent's lock types are
    profiled instead, keeping gevent's cooperative blocking.
    """

    name = "lock"
    sample_types = ("lock-acquire", "lock-acquire-wait", "lock-release", "lock-release-hold")

    def __init__(self, recorder: "Recorder", config: "ProfilerConfig") -> None:
        super().__init__(recorder, config)
        self.capture_pct = float(config.capture_pct)
        self._sampler: "Optional[_lock.Sampler]" = None
        self._running = False
        self._saved: "List[Tuple[object, str, object, object]]" = []
        self._asyncio_hook: "Optional[PostImportHook]" = None
        self._gevent_hook: "Optional[PostImportHook]" = None
        self._gevent_subscribers: "Optional[list]" = None

    @classmethod
    def is_enabled(cls, config: "ProfilerConfig") -> bool:
        """``DD_PROFILING_LOCK_ENABLED`` (default true)."""
        return bool(config.lock_enabled)

    @property
    def running(self) -> bool:
        """Whether the profiled types are installed."""
        return self._running

    def start(self) -> None:
        """Install the profiled lock types and start sampling (at capture 0%, the types sample nothing)."""
        if self._running:
            return
        self._running = True
        if self.capture_pct > 0:
            self._sampler = _lock.Sampler(
                self.recorder.push, interval_for(self.capture_pct), self.config.max_frames, _random.Random().getrandbits(64)
            )
            # Each sampled event with its moment when the recorder keeps a timeline (a core older
            # than the timeline has no such recorder).
            if getattr(self.recorder, "timeline", False):
                self._sampler.enable_timeline()
        _lock.arm(self._sampler, LIBRARY_FILES)
        if gevent_locks.patched_lock_type() is not None:
            self._patch_gevent()
        else:
            self._patch(threading, "Lock", _lock.Lock)
            if getattr(threading, "_CRLock", None) is not None:
                self._patch(threading, "_CRLock", _lock.RLock)
            # gevent.monkey.patch_all() after this start would put its own types over ours.
            if "gevent.events" in sys.modules:
                self._subscribe_gevent(sys.modules["gevent.events"])
            else:
                self._gevent_hook = PostImportHook("gevent.events", self._subscribe_gevent)
                self._gevent_hook.install()
        if "asyncio" in sys.modules:
            self._patch_asyncio(sys.modules["asyncio"])
        else:
            self._asyncio_hook = PostImportHook("asyncio", self._patch_asyncio)
            self._asyncio_hook.install()

    def _patch_gevent(self) -> None:
        # threading patched by gevent: profiled types over gevent's lock (its blocking is cooperative).
        lock_type = gevent_locks.patched_lock_type()
        if lock_type is None or not self._running:
            return
        profiled_lock, profiled_rlock = gevent_locks.make_types(lock_type)
        self._patch(threading, "Lock", profiled_lock)
        self._patch(threading, "_CRLock", profiled_rlock)  # threading.RLock() makes _CRLock when set

    def _subscribe_gevent(self, events_module: object) -> None:
        subscribers = getattr(events_module, "subscribers", None)
        if isinstance(subscribers, list) and self._on_gevent_event not in subscribers:
            subscribers.append(self._on_gevent_event)
            self._gevent_subscribers = subscribers

    def _on_gevent_event(self, event: object) -> None:
        # Called by gevent.monkey as it patches; never raises into it.
        try:
            if getattr(event, "module_name", None) == "threading" and type(event).__name__ == "GeventDidPatchModuleEvent":
                self._patch_gevent()
        except Exception:
            LOG.warning("lock profiler: could not profile gevent's locks", exc_info=True)

    def _patch(self, owner: object, attr: str, value: object) -> None:
        self._saved.append((owner, attr, value, getattr(owner, attr)))
        setattr(owner, attr, value)

    def _patch_asyncio(self, asyncio_module: object) -> None:
        if not self._running:
            return
        from profiler_lock.asyncio_locks import PROFILED
        from asyncio import locks

        for name, profiled in PROFILED.items():
            self._patch(locks, name, profiled)
            if getattr(asyncio_module, name, None) is not None:
                self._patch(asyncio_module, name, profiled)

    def stop(self) -> None:
        """Put the original lock types back and stop sampling."""
        if not self._running:
            return
        self._running = False
        if self._asyncio_hook is not None:
            self._asyncio_hook.remove()
            self._asyncio_hook = None
        if self._gevent_hook is not None:
            self._gevent_hook.remove()
            self._gevent_hook = None
        if self._gevent_subscribers is not None:
            try:
                self._gevent_subscribers.remove(self._on_gevent_event)
            except ValueError:
                pass
            self._gevent_subscribers = None
        for owner, attr, value, original in reversed(self._saved):
            if getattr(owner, attr, None) is value:  # not what gevent (or another patcher) put there since
                setattr(owner, attr, original)
        self._saved = []
        _lock.arm(None)
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            if sampler.errors:
                LOG.warning("lock profiler: %d samples could not be recorded", sampler.errors)
            sampler.drain()

    def after_fork_in_child(self) -> None:
        """Drop the sums and thread labels inherited from the parent: its profile reports them."""
        sampler = self._sampler
        if sampler is not None:
            sampler.discard()

    def snapshot(self) -> None:
        """Push the sums the sampler gathered since the last flush into the recorder."""
        sampler = self._sampler
        if sampler is not None:
            sampler.drain()

    def sampling_rates(self) -> "Dict[str, float]":
        """Each lock sample is one sampled event, as in ddtrace: the fraction of events sampled."""
        if self.capture_pct <= 0:
            return {}
        rate = 1.0 / interval_for(self.capture_pct)
        return {name: rate for name in self.sample_types}

    def stats(self) -> "Dict[str, float]":
        """Sampling figures: the mean interval, and samples lost to errors."""
        sampler = self._sampler
        return {
            "interval": interval_for(self.capture_pct) if self.capture_pct > 0 else 0.0,
            "errors": float(sampler.errors) if sampler is not None else 0.0,
        }
