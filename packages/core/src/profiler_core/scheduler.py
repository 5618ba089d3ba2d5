"""The scheduler: a daemon thread that turns the recorder into profiles every upload interval."""

from __future__ import annotations

import _thread
import os
import threading
import time

from profiler_core._log import get_logger
from profiler_core.interfaces import ExportedProfile
from profiler_core.isolation import call_each

TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Callable, Dict, Optional, Sequence

    from profiler_core.config import ProfilerConfig
    from profiler_core.interfaces import Collector, Exporter
    from profiler_core.recorder import Recorder

LOG = get_logger("profiler_core.scheduler")

THREAD_NAME = "profiler-scheduler"


def profile_tags(config: "ProfilerConfig") -> "Dict[str, str]":
    """Tags that describe this process's profiles: user tags plus service, env and version when set."""
    tags = dict(config.tags)
    for key in ("service", "env", "version"):
        value = getattr(config, key)
        if value:
            tags[key] = value
    return tags


class Scheduler:
    """Flushes the recorder every ``config.upload_interval`` seconds and hands the profile to each exporter.

    The time an export takes is subtracted from the next wait, so periods stay
    aligned to the interval. Exporter and collector errors are logged, never
    raised. ``stop(flush=True)`` flushes one last time so nothing recorded before
    stop is lost. The thread is a daemon and is named ``profiler-scheduler``.
    """

    def __init__(
        self,
        recorder: Recorder,
        collectors: Sequence[Collector],
        exporters: Sequence[Exporter],
        config: ProfilerConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recorder = recorder
        self.collectors = list(collectors)
        self.exporters = list(exporters)
        self.config = config
        self._clock = clock
        self._flush_lock = _thread.allocate_lock()
        self._stop_event = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._seq = 0
        self._sample_types = tuple(t for c in self.collectors for t in c.sample_types)
        self.dropped_total = 0

    def start(self) -> None:
        """Start the flushing thread (no-op if running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.config.upload_interval
        wait = interval
        while not self._stop_event.wait(wait):
            began = self._clock()
            self.flush()
            wait = max(interval - (self._clock() - began), 0.0)

    def flush(self) -> Optional[ExportedProfile]:
        """Snapshot collectors, take the recorder's aggregate, encode it and export it; never raises.

        Returns the exported profile, or None when nothing was recorded (no profile
        is made for an empty period) or the flush failed.
        """
        try:
            with self._flush_lock:
                return self._flush()
        except Exception:
            LOG.exception("profile flush failed")
            return None

    def _flush(self) -> Optional[ExportedProfile]:
        call_each(self.collectors, lambda c: c.snapshot(), "to snapshot")
        snapshot = self.recorder.flush()
        if not snapshot.samples and not snapshot.dropped:
            return None  # nothing was recorded: no profile (and no protobuf import in short programs)
        if snapshot.dropped:
            self.dropped_total += snapshot.dropped
            LOG.warning(
                "profiler recorder was full: %d samples dropped this period (bound: %d distinct stacks)",
                snapshot.dropped,
                self.recorder.max_keys,
            )
        from profiler_core.pprof import encode_profile  # protobuf is imported on first flush, not at startup

        profile = ExportedProfile(
            pprof=encode_profile(snapshot, self._sample_types),
            start_ns=snapshot.start_ns,
            end_ns=snapshot.end_ns,
            seq=self._seq,
            pid=os.getpid(),
            tags=profile_tags(self.config),
        )
        self._seq += 1
        call_each(self.exporters, lambda e: e.export(profile), "to export")
        return profile

    def stop(self, flush: bool = True, timeout: float = 5.0) -> None:
        """Stop the thread, flush once more if ``flush``, and let exporters finish within ``timeout`` seconds."""
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        if flush:
            self.flush()
        deadline = self._clock() + timeout
        call_each(self.exporters, lambda e: e.stop(max(deadline - self._clock(), 0.0)), "to stop")

    def after_fork_in_child(self) -> None:
        """In a forked child: fresh locks, sequence from 0, and a new thread if the parent's was running."""
        was_running = self._thread is not None
        self._flush_lock = _thread.allocate_lock()
        self._thread = None
        self._seq = 0
        call_each(self.exporters, lambda e: e.after_fork_in_child(), "after fork")
        if was_running:
            self.start()

    @property
    def running(self) -> bool:
        """Whether the flushing thread is alive."""
        return self._thread is not None and self._thread.is_alive()
