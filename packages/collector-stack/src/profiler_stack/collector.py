"""The stack collector: a daemon thread sampling every thread's stack, wall time and CPU time."""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Callable, Dict, Optional

from profiler_core._log import get_logger
from profiler_core.config import ProfilerConfig
from profiler_core.interfaces import Collector
from profiler_core.isolation import leave_signals_to_the_program
from profiler_core.recorder import Recorder
from profiler_core.threads import ProfilerThread, get_ident, start_thread

from profiler_stack._sampler import StackSampler, can_read_without_gil, next_interval  # noqa: F401 (re-exported)
from profiler_stack._sampler import note_fork_in_child
from profiler_stack.greenlets import GreenletTracker
from profiler_stack.tasks import RunningTasks, current_task_labels, sample_tasks

LOG = get_logger("profiler_stack")

THREAD_NAME = "profiler-stack-sampler"
MIN_INTERVAL = 0.01  # ddtrace's default sampling interval
MAX_INTERVAL = 1.0


class StackCollector(Collector):
    """Samples all threads' Python stacks every interval (10 ms by default, adaptive).

    Records ``wall-time``/``wall-samples`` and ``cpu-time``/``cpu-samples`` per
    thread with thread labels, and ``wall-time`` for each suspended asyncio task,
    where it awaits, with ``task id`` / ``task name`` labels; the same for each suspended greenlet
    (gevent), whose running greenlet's samples carry its labels too. The sampling interval grows when a tick costs
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
        # The recorder keeps timestamped samples apart when the timeline is on (a core older than
        # the timeline has no such recorder: samples are pushed as before).
        self.sampler.timeline = bool(getattr(recorder, "timeline", False))
        self.greenlets = GreenletTracker()
        self.sampler.task_hook = self._sample_waiting
        self.sampler.running_task_labels = self.greenlets.running
        self.running_tasks = RunningTasks()
        self._waiting_wall = 0  # wall time since waiting tasks were last sampled (ns)
        # Of that, the time each task was seen running (task id -> ns), and what a task running when
        # the waiting ones were sampled is still owed of its waiting time (task id -> ns).
        self._ran_wall: "Dict[int, int]" = {}
        self._owed_wall: "Dict[int, int]" = {}
        self._waiting_next = 0.0  # no sampling of waiting tasks before this time.monotonic()
        self._waiting_cost = 0.0  # CPU seconds a sampling of waiting tasks costs, smoothed
        self.sampler.running_task_of = self.running_tasks.labels_of
        self.sampler.current_task_labels = current_task_labels
        self._thread: Optional[ProfilerThread] = None

    @classmethod
    def is_enabled(cls, config: ProfilerConfig) -> bool:
        """``DD_PROFILING_STACK_ENABLED`` (default true)."""
        return config.stack_enabled

    def start(self) -> None:
        """Start the sampling thread."""
        if self._thread is not None:
            return
        self.sampler.reset()
        self.greenlets.start()
        self._thread = start_thread(self._run, THREAD_NAME)

    def _sample_waiting(
        self, push: "Callable[..., object]", wall_ns: int, thread_labels: "Dict[int, tuple]", max_frames: int
    ) -> int:
        # Tasks and greenlets that are on no thread's stack, as they wait. Walking thousands of them
        # costs milliseconds: they are sampled at most as often as keeps that within half the CPU
        # budget (DD_PROFILING_MAX_TIME_USAGE_PCT), each sample standing for the wall time since
        # the last one (10,000 tasks took 7.8% of a core, sampled at every capture).
        # A task's waiting time is the time since the last sample of waiting tasks minus the time it
        # was seen running meanwhile: which task runs at the moment of that (paced) sample must not
        # decide which one gets all of it (at a pace in step with the tasks' turns, one task lost a
        # quarter of its wall time).
        self._waiting_wall += wall_ns
        ran = self.running_tasks.take_seen() if self.sampler.reading_without_gil else None
        if ran:
            ran_wall = self._ran_wall
            for task_id in ran:
                ran_wall[task_id] = ran_wall.get(task_id, 0) + wall_ns
        now = time.monotonic()
        if now < self._waiting_next:
            return 0
        wall_ns, self._waiting_wall = self._waiting_wall, 0
        ran_wall, self._ran_wall = self._ran_wall, {}
        began = time.thread_time()
        pushed = 0
        if "asyncio.tasks" in sys.modules:
            if ran is None:  # read with the GIL: what ran is known at this moment only
                pushed += sample_tasks(push, wall_ns, thread_labels, max_frames)
            else:
                if len(self._owed_wall) > 1024:  # tasks that ended while owed
                    self._owed_wall.clear()
                pushed += sample_tasks(push, wall_ns, thread_labels, max_frames, ran, ran_wall, self._owed_wall)
        if self.greenlets.tracked:
            pushed += self.greenlets.sample(push, wall_ns, thread_labels, max_frames)
        # Smoothed, and one walk counts for at most 4 times the average: a garbage collection can
        # run in the middle of one (its CPU is then this thread's), and the pause that followed
        # one walk's cost x 200 could leave a task's waiting unsampled for a second (a test on a
        # loaded machine once saw 0.1 s of 1 s; a walk over 13 tasks costs 0.25-0.4 ms).
        cost = time.thread_time() - began
        if self._waiting_cost > 0:
            cost = min(cost, 4 * self._waiting_cost)
        self._waiting_cost = 0.75 * self._waiting_cost + 0.25 * cost if self._waiting_cost > 0 else cost
        self._waiting_next = now + self._waiting_cost * 200.0 / max(self.config.max_time_usage_pct, 0.01)
        return pushed

    def _run(self) -> None:
        leave_signals_to_the_program()  # the native capture thread started from here inherits it
        self.sampler.ignored = {get_ident()} if self.config.ignore_profiler else set()
        try:
            self.sampler.run(self.min_interval, max(MAX_INTERVAL, self.min_interval), self.config.max_time_usage_pct)
        except Exception:
            LOG.exception("stack sampler stopped")

    def stats(self) -> "Dict[str, float]":
        """Sampling figures: the interval, samples lost to errors, captures dropped, frames left unnamed,
        stack reads done again (a frame changed while read), thread captures given up for that, and
        thread lists published early because a new thread appeared."""
        sampler = self.sampler
        return {
            "interval": sampler.interval,
            "errors": float(sampler.errors),
            "dropped_captures": float(sampler.dropped_captures),
            "unknown_frames": float(sampler.unknown_frames),
            "torn_reads": float(sampler.torn_reads),
            "thread_list_republished": float(sampler.republished),
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
        self.greenlets.stop()
        self.sampler.request_stop()
        if thread.ident != get_ident():
            thread.join()
        self.sampler.flush_pending()

    def after_fork_in_child(self) -> None:
        """The sampling thread does not survive fork: forget the parent's threads and start a new one."""
        note_fork_in_child()
        if self._thread is None:
            return
        self._thread = None
        self.start()
