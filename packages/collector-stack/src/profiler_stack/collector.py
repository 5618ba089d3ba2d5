"""The stack collector: a daemon thread sampling every thread's stack, wall time and CPU time."""

from __future__ import annotations

import threading
TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Dict, Optional

from profiler_core._log import get_logger
from profiler_core.config import ProfilerConfig
from profiler_core.interfaces import Collector
from profiler_core.recorder import Recorder

from profiler_stack._sampler import StackSampler, can_read_without_gil, next_interval  # noqa: F401 (re-exported)
from profiler_stack.tasks import sample_tasks

LOG = get_logger("profiler_stack")

THREAD_NAME = "profiler-stack-sampler"
MIN_INTERVAL = 0.01  # ddtrace's default sampling interval
MAX_INTERVAL = 1.0


class StackCollector(Collector):
    """Samples all threads' Python stacks every interval (10 ms by default, adaptive).

    Records ``wall-time``/``wall-samples`` and ``cpu-time``/``cpu-samples`` per
    thread with thread labels, and ``wall-time`` for each suspended asyncio task,
    where it awaits, with ``task id`` / ``task name`` labels. The sampling interval grows when a tick costs
    more than ``DD_PROFILING_MAX_TIME_USAGE_PCT`` percent of the interval.

    Stacks are read without the GIL where the system allows it (``gil_free``, the default;
    ``sampler.reading_without_gil`` tells what a running collector does), so busy threads
    cannot choose the moments they are seen at; otherwise with the GIL.
    """

    name = "stack"
    sample_types = ("cpu-samples", "cpu-time", "wall-samples", "wall-time")

    def __init__(
        self, recorder: Recorder, config: ProfilerConfig, min_interval: float = MIN_INTERVAL, gil_free: bool = True
    ) -> None:
        super().__init__(recorder, config)
        self.min_interval = min_interval
        self.sampler = StackSampler(recorder.push, config.max_frames, config.ignore_profiler, gil_free=gil_free)
        self.sampler.task_hook = sample_tasks
        self._thread: Optional[threading.Thread] = None

    @classmethod
    def is_enabled(cls, config: ProfilerConfig) -> bool:
        """``DD_PROFILING_STACK_ENABLED`` (default true)."""
        return config.stack_enabled

    def start(self) -> None:
        """Start the sampling thread."""
        if self._thread is not None:
            return
        self.sampler.reset()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sampler.ignored = {threading.get_ident()} if self.config.ignore_profiler else set()
        try:
            self.sampler.run(self.min_interval, max(MAX_INTERVAL, self.min_interval), self.config.max_time_usage_pct)
        except Exception:
            LOG.exception("stack sampler stopped")

    def stats(self) -> "Dict[str, float]":
        """Sampling figures: the interval, samples lost to errors, captures dropped, frames left unnamed,
        stack reads done again (a frame changed while read) and thread captures given up for that."""
        sampler = self.sampler
        return {
            "interval": sampler.interval,
            "errors": float(sampler.errors),
            "dropped_captures": float(sampler.dropped_captures),
            "unknown_frames": float(sampler.unknown_frames),
            "torn_reads": float(sampler.torn_reads),
            "torn_stacks": float(sampler.torn_stacks),
        }

    @property
    def interval(self) -> float:
        """The current sampling interval in seconds."""
        return self.sampler.interval

    def stop(self) -> None:
        """Stop sampling and wait for the thread to end (within about 20 ms)."""
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        self.sampler.request_stop()
        if thread is not threading.current_thread():
            thread.join()
        self.sampler.flush_pending()

    def after_fork_in_child(self) -> None:
        """The sampling thread does not survive fork: forget the parent's threads and start a new one."""
        if self._thread is None:
            return
        self._thread = None
        self.start()
