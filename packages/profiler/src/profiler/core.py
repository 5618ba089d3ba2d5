"""The :class:`Profiler` facade, with ddtrace's constructor and lifecycle."""

from __future__ import annotations

import _thread
import atexit
import os
import weakref
TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Type

from profiler_core._log import get_logger
from profiler_core.config import ProfilerConfig, load_config
from profiler_core.interfaces import Collector, Exporter
from profiler_core.isolation import call_each
from profiler_core.recorder import Recorder
from profiler_core.scheduler import Scheduler

from profiler import registry

LOG = get_logger("profiler")

EXIT_FLUSH_TIMEOUT = 5.0


class Profiler:
    """Continuous profiler: runs the installed collectors and ships profiles to the configured exporters.

    Drop-in for ``ddtrace.profiling.Profiler``: keyword arguments override the
    ``DD_*`` environment, ``start()`` and ``stop()`` are idempotent and
    thread-safe, and nothing raised inside the profiler reaches the caller once
    it runs. ``collectors`` / ``exporters`` replace entry-point discovery with
    explicit classes (for tests and embedding).
    """

    def __init__(
        self,
        env: Optional[str] = None,
        service: Optional[str] = None,
        version: Optional[str] = None,
        tags: Optional[Dict[str, str]] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        collectors: Optional[Sequence[Type[Collector]]] = None,
        exporters: Optional[Sequence[Type[Exporter]]] = None,
        **options: Any,
    ) -> None:
        if api_key and not url:
            options.setdefault("agentless", True)  # a key given in code means: send to the intake directly
        self.config: "ProfilerConfig" = load_config(
            env=env, service=service, version=version, tags=tags, agent_url=url, api_key=api_key, **options
        )
        self._collector_classes = list(collectors) if collectors is not None else None
        self._exporter_classes = list(exporters) if exporters is not None else None
        self._lock = _thread.allocate_lock()
        self._status = "stopped"
        self.recorder: Optional[Recorder] = None
        self.collectors: List[Collector] = []
        self.exporters: List[Exporter] = []
        self._scheduler: Optional[Scheduler] = None
        self._stop_on_exit = False
        self._profile_children = True

    @property
    def status(self) -> str:
        """``"running"`` or ``"stopped"``."""
        return self._status

    def start(self, stop_on_exit: bool = True, profile_children: bool = True) -> None:
        """Start collecting and exporting; a no-op if already running.

        With ``stop_on_exit`` the last period is flushed at interpreter exit;
        with ``profile_children`` a forked child keeps profiling with a fresh
        profiler of its own (the parent's unflushed samples are not copied).
        """
        with self._lock:
            if self._status == "running":
                return
            self._start_locked(stop_on_exit, profile_children)

    def _start_locked(self, stop_on_exit: bool, profile_children: bool) -> None:
        config = self.config
        self.recorder = Recorder(max_frames=config.max_frames, max_keys=config.max_keys)
        self.exporters = self._build_exporters()
        self.collectors = []
        for cls in self._collector_classes_enabled():
            try:
                collector = cls(self.recorder, config)
                collector.start()
            except Exception:
                LOG.exception("collector %s failed to start; continuing without it", getattr(cls, "name", cls))
                continue
            self.collectors.append(collector)
        self._scheduler = Scheduler(self.recorder, self.collectors, self.exporters, config)
        self._scheduler.start()
        self._status = "running"
        self._stop_on_exit = stop_on_exit
        self._profile_children = profile_children
        if stop_on_exit:
            atexit.register(self._at_exit)
        _register_for_fork(self)
        LOG.debug(
            "profiler started: collectors=%s exporters=%s",
            [c.name for c in self.collectors],
            [e.name for e in self.exporters],
        )

    def _collector_classes_enabled(self) -> List[Type[Collector]]:
        if self._collector_classes is not None:
            classes = self._collector_classes
        else:
            classes = list(registry.available_collectors().values())
        enabled = []
        for cls in classes:
            try:
                if cls.is_enabled(self.config):
                    enabled.append(cls)
            except Exception:
                LOG.exception("collector %s: is_enabled failed", getattr(cls, "name", cls))
        return enabled

    def _build_exporters(self) -> List[Exporter]:
        if self._exporter_classes is not None:
            classes = self._exporter_classes
        else:
            classes = list(registry.available_exporters().values())
        exporters: List[Exporter] = []
        for cls in classes:
            try:
                if cls.is_enabled(self.config):
                    exporters.append(cls(self.config))
            except Exception:
                LOG.exception("exporter %s failed to start; continuing without it", getattr(cls, "name", cls))
        if not exporters:
            LOG.warning(
                "no profile exporter is enabled: profiles are collected but not kept "
                "(set DD_PROFILING_OUTPUT_PPROF or install profiler[agent])"
            )
        return exporters

    def stop(self, flush: bool = True) -> None:
        """Stop collectors, restore everything they patched, and flush the last period if ``flush``."""
        with self._lock:
            if self._status != "running":
                return
            self._status = "stopped"
            call_each(reversed(self.collectors), lambda c: c.stop(), "to stop")
            if self._scheduler is not None:
                self._scheduler.stop(flush=flush, timeout=EXIT_FLUSH_TIMEOUT)
            if self._stop_on_exit:
                atexit.unregister(self._at_exit)

    def flush(self) -> None:
        """Export what has been recorded so far now, without waiting for the interval."""
        scheduler = self._scheduler
        if scheduler is not None and self._status == "running":
            scheduler.flush()

    def _at_exit(self) -> None:
        try:
            self.stop(flush=True)
        except Exception:
            LOG.exception("profiler failed to stop at exit")

    def _after_fork_in_child(self) -> None:
        # Only this thread survives the fork: no lock here can be trusted.
        self._lock = _thread.allocate_lock()
        if self._status != "running":
            return
        assert self.recorder is not None and self._scheduler is not None
        self.recorder.reset_after_fork()
        if not self._profile_children:
            call_each(reversed(self.collectors), lambda c: c.stop(), "to stop in a forked child")
            self._status = "stopped"
            return
        call_each(self.collectors, lambda c: c.after_fork_in_child(), "to restart after fork")
        self._scheduler.after_fork_in_child()


_FORK_REGISTERED = False
_PROFILERS: "weakref.WeakSet[Profiler]" = weakref.WeakSet()


def _register_for_fork(profiler: Profiler) -> None:
    global _FORK_REGISTERED
    _PROFILERS.add(profiler)
    if not _FORK_REGISTERED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _FORK_REGISTERED = True


def _after_fork_in_child() -> None:
    for profiler in list(_PROFILERS):
        try:
            profiler._after_fork_in_child()
        except Exception:
            LOG.exception("profiler failed to restart after fork")
