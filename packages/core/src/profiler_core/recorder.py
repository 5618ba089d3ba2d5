"""The recorder: a bounded, thread-safe aggregate of samples keyed by (stack, labels)."""

from __future__ import annotations

import time
from profiler_core.events import truncate_stack
from profiler_core.timeline import DEFAULT_MAX_SAMPLES, EMPTY, Timeline, TimedSamples

TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Dict, Mapping, Tuple

    from profiler_core.events import Labels, Sample, Stack

    
# A raw lock from _thread: the lock collector replaces threading.Lock, and the
# recorder's own lock must never be profiled (it would record itself); an OS lock
# even under gevent, as the profiler's threads push too.
from profiler_core.threads import allocate_lock as _allocate_lock

DEFAULT_MAX_KEYS = 65536


class RecorderSnapshot:
    """What the recorder aggregated between two flushes.

    ``samples`` maps ``(stack, labels)`` to summed values by sample type;
    ``dropped`` counts pushes refused because the aggregate was full. With the
    timeline on, ``timed`` holds the samples pushed with a timestamp, each on its
    own (see :mod:`profiler_core.timeline`), and ``untimed`` counts those summed
    into ``samples`` instead because the timeline was full.
    """

    __slots__ = ("start_ns", "end_ns", "samples", "dropped", "timed", "untimed")

    def __init__(self, start_ns: int, end_ns: int, samples: Mapping[SampleKey, Mapping[str, int]], dropped: int,
                 timed: TimedSamples = EMPTY, untimed: int = 0) -> None:
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.samples = samples
        self.dropped = dropped
        self.timed = timed
        self.untimed = untimed

    def __repr__(self) -> str:
        return "RecorderSnapshot(start_ns=%d, end_ns=%d, %d keys, %d timed, dropped=%d)" % (
            self.start_ns, self.end_ns, len(self.samples), len(self.timed), self.dropped)

    @property
    def duration_ns(self) -> int:
        """Length of the period the snapshot covers."""
        return max(self.end_ns - self.start_ns, 0)

    def totals(self) -> Dict[str, int]:
        """Sum of every sample type over all keys and timestamped samples."""
        out: Dict[str, int] = {}
        for values in self.samples.values():
            for name, value in values.items():
                out[name] = out.get(name, 0) + value
        for name, value in self.timed.totals().items():
            if value:
                out[name] = out.get(name, 0) + value
        return out

    def is_empty(self) -> bool:
        """Nothing was recorded nor dropped in the period."""
        return not self.samples and not self.timed and not self.dropped


class Recorder:
    """Aggregates samples into value sums at push time, so memory grows with distinct keys, not samples.

    At most ``max_keys`` distinct ``(stack, labels)`` keys are held between
    flushes; a push that would add one more is dropped and counted, and the count
    is reported in the next snapshot. Stacks longer than ``max_frames`` are cut
    to the innermost frames plus an omitted-frames marker. With ``timeline``, a
    push with a timestamp is kept on its own instead (at most
    ``max_timed_samples`` a period). All methods are safe to call from any thread.
    """

    def __init__(self, max_frames: int = 64, max_keys: int = DEFAULT_MAX_KEYS, timeline: bool = False,
                 max_timed_samples: int = DEFAULT_MAX_SAMPLES) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_frames = max_frames
        self.max_keys = max_keys
        self._lock = _allocate_lock()
        self._data: "Dict[SampleKey, Dict[str, int]]" = {}
        self._dropped = 0
        self._start_ns = time.time_ns()
        self._timeline = Timeline(max_timed_samples) if timeline else None
        self._untimed = 0

    @property
    def timeline(self) -> bool:
        """Whether pushes with a timestamp are kept on their own for the timeline."""
        return self._timeline is not None

    def push(self, stack: Stack, labels: Labels, values: Mapping[str, int], timestamp_ns: "int | None" = None) -> bool:
        """Add ``values`` to the aggregate of ``(stack, labels)``; False if dropped for the bound.

        ``timestamp_ns`` is when the sample was taken, on ``time.monotonic_ns()``'s clock: with
        the timeline on, the sample is kept on its own with that moment (summed into the
        aggregate as without it once the period's timeline is full)."""
        if len(stack) > self.max_frames:
            stack = truncate_stack(stack, self.max_frames)
        with self._lock:
            if timestamp_ns is not None and self._timeline is not None:
                if self._timeline.add(stack, labels, timestamp_ns, values):
                    return True
                self._untimed += 1
            key = (stack, labels)
            acc = self._data.get(key)
            if acc is None:
                if len(self._data) >= self.max_keys:
                    self._dropped += 1
                    return False
                self._data[key] = dict(values)
                return True
            for name, value in values.items():
                acc[name] = acc.get(name, 0) + value
            return True

    def record(self, sample: Sample) -> bool:
        """Push a :class:`Sample` record; same result as :meth:`push`."""
        return self.push(tuple(sample.stack), sample.labels_tuple(), sample.values)

    def flush(self) -> RecorderSnapshot:
        """Atomically take everything aggregated since the last flush and start a new period."""
        now = time.time_ns()
        with self._lock:
            data, dropped, start, untimed = self._data, self._dropped, self._start_ns, self._untimed
            self._data, self._dropped, self._start_ns, self._untimed = {}, 0, now, 0
            timed = self._timeline.take() if self._timeline is not None else EMPTY
        return RecorderSnapshot(start, now, data, dropped, timed, untimed)

    def reset_after_fork(self) -> None:
        """In a forked child: discard the parent's unflushed data and replace a lock another thread may have held."""
        self._lock = _allocate_lock()
        self._data = {}
        self._dropped = 0
        self._start_ns = time.time_ns()
        self._untimed = 0
        if self._timeline is not None:
            self._timeline.take()

    def __len__(self) -> int:
        return len(self._data)
