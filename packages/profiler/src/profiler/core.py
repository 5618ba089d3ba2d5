"""The :class:`Profiler` facade, with ddtrace's constructor and lifecycle."""

from __future__ import annotations

import _thread
import atexit
import os
import weakref
TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Sequence, Type

from profiler_core._log import RateLimit, enable_debug, get_logger
from profiler_core.config import ProfilerConfig, load_config
from profiler_core.interfaces import Collector, Exporter
from profiler_core.isolation import call_each
from profiler_core.recorder import Recorder
from profiler_core.scheduler import Scheduler
from profiler_core.threads import own_work

from profiler_core import trace_context

from profiler import exit_paths, registry, tracing

LOG = get_logger("profiler")

EXIT_FLUSH_TIMEOUT = 5.0


# ddtrace's Profiler arguments that are this project's configuration options under another name.
_DDTRACE_ENABLE_ARGUMENTS = {
    "_stack_collector_enabled": "stack_enabled",
    "_lock_collector_enabled": "lock_enabled",
    "_memory_collector_enabled": "memory_enabled",
    "_exception_profiling_enabled": "exception_enabled",
    "endpoint_collection_enabled": "endpoint_collection_enabled",
}
# ddtrace's arguments for what this project does not do (yet): accepted, with one notice.
_DDTRACE_NOT_APPLICABLE = ("enable_code_provenance",)


def _ddtrace_arguments(options: "Dict[str, Any]") -> None:
    """Translate ddtrace's ``Profiler`` keyword arguments in ``options`` into this project's, in place."""
    for theirs, ours in _DDTRACE_ENABLE_ARGUMENTS.items():
        if theirs in options:
            value = options.pop(theirs)
            if value is not None:
                options.setdefault(ours, bool(value))
    for name in _DDTRACE_NOT_APPLICABLE:
        if name in options:
            value = options.pop(name)
            if value:
                LOG.info("profiler: Profiler(%s=%r) is accepted as in ddtrace but has no effect here yet", name, value)


class Profiler:
    """Continuous profiler: runs the installed collectors and ships profiles to the configured exporters.

    Drop-in for ``ddtrace.profiling.Profiler``: keyword arguments override the
    ``DD_*`` environment, ``start()`` and ``stop()`` are idempotent and
    thread-safe, and nothing raised inside the profiler reaches the caller once
    it runs. One process runs one profiler: ``start()`` while another is running
    logs a warning and starts nothing (:func:`running_profiler` is the running one).
    ``collectors`` / ``exporters`` replace entry-point discovery with explicit
    classes (for tests and embedding); ``config``, a configuration already loaded,
    replaces the environment and the other arguments.
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
        config: Optional[ProfilerConfig] = None,
        tracer: Any = None,
        **options: Any,
    ) -> None:
        _ddtrace_arguments(options)
        #: ddtrace's ``tracer=`` argument, kept for the trace-correlation integration.
        self.tracer = tracer
        if config is not None:  # already loaded (profiler-run's bootstrap): not read, nor warned about, twice
            self.config: "ProfilerConfig" = config
        else:
            if api_key and not url:
                options.setdefault("agentless", True)  # a key given in code means: send to the intake directly
            self.config = load_config(
                env=env, service=service, version=version, tags=tags, agent_url=url, api_key=api_key, **options
            )
        if self.config.debug:
            enable_debug()
            LOG.debug("profiler configuration: %r", self.config)
        self._collector_classes = list(collectors) if collectors is not None else None
        self._exporter_classes = list(exporters) if exporters is not None else None
        self._lock = _thread.allocate_lock()
        self._status = "stopped"
        self._waiting_for_workers = False  # a uWSGI master's: started, its threads start in the workers
        self.recorder: Optional[Recorder] = None
        self.collectors: List[Collector] = []
        self.exporters: List[Exporter] = []
        self._scheduler: Optional[Scheduler] = None
        self._stop_on_exit = False
        self._profile_children = True
        self._failures: "Dict[str, int]" = {}
        self._limit = RateLimit()

    @property
    def env(self) -> Optional[str]:
        """``DD_ENV`` or ``env=``, as ddtrace's ``Profiler.env``."""
        return self.config.env

    @property
    def service(self) -> Optional[str]:
        """``DD_SERVICE`` or ``service=``."""
        return self.config.service

    @property
    def version(self) -> Optional[str]:
        """``DD_VERSION`` or ``version=``."""
        return self.config.version

    @property
    def tags(self) -> Dict[str, str]:
        """The profile tags (``DD_TAGS``, ``DD_PROFILING_TAGS`` and ``tags=``)."""
        return dict(self.config.tags)

    @property
    def status(self) -> str:
        """``"running"`` or ``"stopped"``. In the master of a preforking uWSGI without fork hooks,
        "running" means started for its workers: each worker profiles itself, the master runs no
        profiler thread (see ``exit_paths.uwsgi_forks_workers_from_here``)."""
        return self._status

    def start(self, stop_on_exit: bool = True, profile_children: bool = True) -> None:
        """Start collecting and exporting; a no-op if already running.

        With ``stop_on_exit`` the last period is flushed at interpreter exit, on SIGTERM when the
        program leaves it its default action, and in multiprocessing children before ``os._exit``;
        with ``profile_children`` a forked child keeps profiling with a fresh
        profiler of its own (the parent's unflushed samples are not copied).
        """
        global _RUNNING
        with self._lock:
            if self._status == "running":
                return
            with _RUNNING_LOCK:
                running = _RUNNING
                if running is not None and running is not self and running._status == "running":
                    LOG.warning(
                        "profiler: a profiler is already running in this process; not starting another "
                        "(one process has one profiler: stop the running one first)"
                    )
                    return
                _RUNNING = self
            try:
                with own_work():  # what starting allocates or locks in this thread is not the program's
                    self._start_locked(stop_on_exit, profile_children)
            finally:
                if self._status != "running":
                    _clear_running(self)

    def _start_locked(self, stop_on_exit: bool, profile_children: bool) -> None:
        for problem in exit_paths.hook_uwsgi(_after_fork_in_child):
            LOG.warning("profiler: %s", problem)
        if exit_paths.uwsgi_forks_workers_from_here():
            # Started in each worker from uWSGI's post-fork hook (_after_fork_in_child) instead.
            self._status = "running"
            self._waiting_for_workers = True
            self._stop_on_exit = stop_on_exit
            self._profile_children = profile_children
            _register_for_fork(self)
            LOG.debug("profiler: uWSGI master forking from C: profiling starts in each worker")
            return
        config = self.config
        self.recorder = Recorder(max_frames=config.max_frames, max_keys=config.max_keys, timeline=config.timeline_enabled)
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
        tracing.start(config, self.tracer)
        self._scheduler = Scheduler(self.recorder, self.collectors, self.exporters, config, failures=self._failures)
        self._scheduler.start()
        self._status = "running"
        self._stop_on_exit = stop_on_exit
        self._profile_children = profile_children
        if stop_on_exit:
            atexit.register(self._at_exit)
            exit_paths.install_sigterm_flush(_stop_all)
            exit_paths.prepare_spawned_child(_stop_all, EXIT_FLUSH_TIMEOUT)
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
        failed = False
        for cls in classes:
            try:
                if cls.is_enabled(self.config):
                    exporters.append(cls(self.config))
            except ValueError as exc:  # a configuration it cannot use: its message says which
                failed = True
                LOG.warning("profiler: exporter %s not started: %s", getattr(cls, "name", cls), exc)
            except Exception:
                failed = True
                LOG.exception("exporter %s failed to start; continuing without it", getattr(cls, "name", cls))
        if not exporters and failed:
            LOG.warning("profiler: no profile exporter could be started (see above): profiles are collected but not kept")
        elif not exporters:
            LOG.warning(
                "no profile exporter is enabled: profiles are collected but not kept "
                "(set DD_PROFILING_OUTPUT_PPROF or install pyprof-dd[agent])"
            )
        return exporters

    def stop(self, flush: bool = True, timeout: float = EXIT_FLUSH_TIMEOUT) -> None:
        """Stop collectors, restore everything they patched, and flush the last period if ``flush``.

        Exporters get ``timeout`` seconds to deliver what is left.
        """
        with self._lock, own_work():
            if self._status != "running":
                return
            self._status = "stopped"
            call_each(reversed(self.collectors), lambda c: c.stop(), "to stop", self._failures, self._limit)
            if self._scheduler is not None:
                self._scheduler.stop(flush=flush, timeout=timeout)
            tracing.stop()
            if self._stop_on_exit:
                atexit.unregister(self._at_exit)
            _clear_running(self)
        if not any(p._status == "running" and p._stop_on_exit for p in list(_PROFILERS)):
            exit_paths.uninstall_sigterm_flush()

    def stats(self) -> "Dict[str, Any]":
        """The profiler's own figures, to see what it lost and why.

        ``{"status", "scheduler": {profiles, flush_errors, recorder_dropped},
        "collectors": {name: {...}}, "exporters": {name: {...}}}``: each collector's and
        exporter's own ``stats()`` (drops, errors, upload results: sent, rejected,
        dropped, failed attempts...) plus ``failures``, the times the profiler caught an
        exception from it. Never raises; a plugin whose stats fail reports ``{"failures": n}``.
        """
        result: "Dict[str, Any]" = {"status": self._status}
        scheduler = self._scheduler
        result["scheduler"] = scheduler.stats() if scheduler is not None else {}
        for kind, plugins in (("collectors", self.collectors), ("exporters", self.exporters)):
            figures: "Dict[str, Dict[str, float]]" = {}
            for plugin in list(plugins):
                name = getattr(plugin, "name", "") or type(plugin).__name__
                try:
                    own = dict(plugin.stats())
                except Exception:
                    own = {}
                own["failures"] = float(self._failures.get(name, 0))
                figures[name] = own
            result[kind] = figures
        return result

    def flush(self) -> None:
        """Export what has been recorded so far now, without waiting for the interval."""
        scheduler = self._scheduler
        if scheduler is not None and self._status == "running":
            scheduler.flush()

    def _at_exit(self) -> None:
        with own_work(), exit_paths.exit_flush():
            try:
                self.stop(flush=True)
            except Exception:
                LOG.exception("profiler failed to stop at exit")

    def _after_fork_in_child(self) -> None:
        # Only this thread survives the fork: no lock here can be trusted.
        self._lock = _thread.allocate_lock()
        if self._status != "running":
            return
        if self._waiting_for_workers:
            # A uWSGI worker of a master that ran no profiler thread: the profiler starts here.
            self._waiting_for_workers = False
            self._status = "stopped"
            with self._lock, own_work():
                self._start_locked(self._stop_on_exit, self._profile_children)
            return
        assert self.recorder is not None and self._scheduler is not None
        self.recorder.reset_after_fork()
        trace_context.after_fork_in_child()
        if not self._profile_children:
            call_each(reversed(self.collectors), lambda c: c.stop(), "to stop in a forked child")
            self._status = "stopped"
            _clear_running(self)
            return
        with own_work():
            call_each(self.collectors, lambda c: c.after_fork_in_child(), "to restart after fork")
            self._scheduler.after_fork_in_child()


#: The profiler running in this process, if any: one process has one profiler.
_RUNNING: "Optional[Profiler]" = None
_RUNNING_LOCK = _thread.allocate_lock()


def running_profiler() -> "Optional[Profiler]":
    """The profiler running in this process (started by ``Profiler.start``, ``profiler-run`` or
    ``import profiler.auto``), or None."""
    running = _RUNNING
    return running if running is not None and running._status == "running" else None


def _clear_running(profiler: Profiler) -> None:
    global _RUNNING
    if _RUNNING is profiler:
        _RUNNING = None


_FORK_REGISTERED = False
_PROFILERS: "weakref.WeakSet[Profiler]" = weakref.WeakSet()
#: The process whose fork was handled last: uWSGI's post-fork hook skips a fork handled already.
_FORK_HANDLED_PID = 0


def _stop_all(timeout: float) -> None:
    """Stop every running profiler that flushes at exit, each flushing its last period within ``timeout``."""
    with exit_paths.exit_flush():
        for profiler in list(_PROFILERS):
            if profiler._status == "running" and profiler._stop_on_exit:
                try:
                    profiler.stop(flush=True, timeout=timeout)
                except Exception:
                    LOG.exception("profiler failed to stop at exit")


def _register_for_fork(profiler: Profiler) -> None:
    global _FORK_REGISTERED
    _PROFILERS.add(profiler)
    if not _FORK_REGISTERED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _FORK_REGISTERED = True


def _after_fork_in_child() -> None:
    global _RUNNING_LOCK
    _RUNNING_LOCK = _thread.allocate_lock()
    global _FORK_HANDLED_PID
    if _FORK_HANDLED_PID == os.getpid():
        return  # uWSGI's post-fork hook, after Python's own at-fork handlers ran
    _FORK_HANDLED_PID = os.getpid()
    exit_paths.flush_in_multiprocessing_child(_stop_all, EXIT_FLUSH_TIMEOUT)
    for profiler in list(_PROFILERS):
        try:
            profiler._after_fork_in_child()
        except Exception:
            LOG.exception("profiler failed to restart after fork")
