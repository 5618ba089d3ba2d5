"""The scheduler: a daemon thread that turns the recorder into profiles every upload interval."""

from __future__ import annotations

import _thread
import os
import time

from profiler_core._log import RateLimit, get_logger
from profiler_core.interfaces import ExportedProfile
from profiler_core.isolation import call_each, leave_signals_to_the_program
from profiler_core import trace_context
from profiler_core.sampling import rates_comment
from profiler_core.threads import Event, ProfilerThread, allocate_lock, get_ident, start_thread

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


class _Sequence:
    """Profile sequence numbers of this process: never the same twice in one process, from 0 in a forked child."""

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._pid = os.getpid()
        self._next = 0

    def next(self) -> int:
        with self._lock:
            pid = os.getpid()
            if pid != self._pid:
                self._pid, self._next = pid, 0
            seq = self._next
            self._next += 1
            return seq

    def after_fork_in_child(self) -> None:
        self._lock = allocate_lock()  # the parent's may have been held by a thread that is gone


_SEQUENCE = _Sequence()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_SEQUENCE.after_fork_in_child)


def next_sequence_number() -> int:
    """The next profile sequence number of this process (shared by every scheduler in it)."""
    return _SEQUENCE.next()


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
        failures: Optional[Dict[str, int]] = None,
    ) -> None:
        self.recorder = recorder
        self.collectors = list(collectors)
        self.exporters = list(exporters)
        self.config = config
        self._clock = clock
        self._flush_lock = allocate_lock()
        self._stop_event = Event()
        self._thread: Optional[ProfilerThread] = None
        self._sample_types = tuple(t for c in self.collectors for t in c.sample_types)
        self.dropped_total = 0
        self.untimed_total = 0  # timestamped samples summed without their moment: the timeline was full
        self.profiles = 0
        self.flush_errors = 0
        #: Failures of each collector and exporter (by name) when called from here.
        self.failures: Dict[str, int] = failures if failures is not None else {}
        self._limit = RateLimit()
        # Imported here, on the thread that builds the profiler, never in the flushing thread: an import
        # in a background thread holds a module lock that a fork at that moment leaves held forever in
        # the child, whose exit flush then waits on it (issue #15, item 3).
        from profiler_core.pprof import encode_profile

        self._encode_profile = encode_profile

    def start(self) -> None:
        """Start the flushing thread (no-op if running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop_event = Event()
        self._thread = start_thread(self._run, THREAD_NAME)

    def _run(self) -> None:
        leave_signals_to_the_program()
        # A configuration built in code is not range-checked: a wait beyond TIMEOUT_MAX would raise.
        interval = min(max(float(self.config.upload_interval), 0.001), _thread.TIMEOUT_MAX)
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
            self.flush_errors += 1
            LOG.limited(self._limit, "flush", "profile flush failed", exc_info=True, level="error")
            return None

    def _flush(self) -> Optional[ExportedProfile]:
        call_each(self.collectors, lambda c: c.snapshot(), "to snapshot", self.failures, self._limit)
        snapshot = self.recorder.flush()
        if snapshot.is_empty():
            return None  # nothing was recorded: no profile (and no protobuf import in short programs)
        self.untimed_total += snapshot.untimed
        if snapshot.dropped:
            self.dropped_total += snapshot.dropped
            LOG.limited(
                self._limit,
                "recorder-full",
                "profiler recorder was full: %d samples dropped this period (bound: %d distinct stacks)",
                snapshot.dropped,
                self.recorder.max_keys,
            )
        endpoint_counts: "Dict[str, int]" = {}
        if trace_context.active:
            endpoint_counts, roots = trace_context.take_endpoints()
            snapshot.samples = trace_context.label_endpoints(snapshot.samples, roots)
            if roots and snapshot.timed:
                snapshot.timed = snapshot.timed.relabelled(trace_context.endpoint_relabeller(roots))
        rates: "Dict[str, float]" = {}
        call_each(self.collectors, lambda c: rates.update(c.sampling_rates()), "for sampling rates", self.failures, self._limit)
        profile = ExportedProfile(
            pprof=self._encode_profile(snapshot, self._sample_types, comments=[rates_comment(rates)] if rates else ()),
            start_ns=snapshot.start_ns,
            end_ns=snapshot.end_ns,
            seq=next_sequence_number(),
            pid=os.getpid(),
            tags=profile_tags(self.config),
            endpoint_counts=endpoint_counts,
        )
        self.profiles += 1
        call_each(self.exporters, lambda e: e.export(profile), "to export", self.failures, self._limit)
        return profile

    def stop(self, flush: bool = True, timeout: float = 5.0) -> None:
        """Stop the thread, flush once more if ``flush``, and let exporters finish within ``timeout`` seconds."""
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread.ident != get_ident():
            thread.join(timeout)
        self._thread = None
        if flush:
            self.flush()
        deadline = self._clock() + timeout
        call_each(self.exporters, lambda e: e.stop(max(deadline - self._clock(), 0.0)), "to stop", self.failures, self._limit)

    def after_fork_in_child(self) -> None:
        """In a forked child: fresh locks and a new thread if the parent's was running (sequence numbers
        start from 0 again, in the child's own files)."""
        was_running = self._thread is not None
        self._flush_lock = allocate_lock()
        self._thread = None
        call_each(self.exporters, lambda e: e.after_fork_in_child(), "after fork")
        if was_running:
            self.start()

    def stats(self) -> Dict[str, float]:
        """Profiles made, flushes that failed, samples the recorder dropped (it was full), samples
        kept without their moment (the timeline was full), and trace correlation's drops: span
        links and finished requests not kept (past their bounds)."""
        return {
            "profiles": float(self.profiles),
            "flush_errors": float(self.flush_errors),
            "recorder_dropped": float(self.dropped_total),
            "timeline_untimed": float(self.untimed_total),
            "trace_links_dropped": float(trace_context.links_dropped),
            "endpoints_dropped": float(trace_context.endpoints_dropped),
        }

    @property
    def running(self) -> bool:
        """Whether the flushing thread is alive."""
        return self._thread is not None and self._thread.is_alive()
