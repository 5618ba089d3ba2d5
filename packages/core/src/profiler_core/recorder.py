"""The recorder: a bounded, thread-safe aggregate of samples keyed by (stack, labels)."""

from __future__ import annotations

import time
from profiler_core.events import truncate_stack

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
    ``dropped`` counts pushes refused because the aggregate was full.
    """

    __slots__ = ("start_ns", "end_ns", "samples", "dropped")

    def __init__(self, start_ns: int, end_ns: int, samples: Mapping[SampleKey, Mapping[str, int]], dropped: int) -> None:
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.samples = samples
        self.dropped = dropped

    def __repr__(self) -> str:
        return "RecorderSnapshot(start_ns=%d, end_ns=%d, %d keys, dropped=%d)" % (
            self.start_ns, self.end_ns, len(self.samples), self.dropped)

    @property
    def duration_ns(self) -> int:
        """Length of the period the snapshot covers."""
        return max(self.end_ns - self.start_ns, 0)

    def totals(self) -> Dict[str, int]:
        """Sum of every sample type over all keys."""
        out: Dict[str, int] = {}
        for values in self.samples.values():
            for name, value in values.items():
                out[name] = out.get(name, 0) + value
        return out


class Recorder:
    """Aggregates samples into value sums at push time, so memory grows with distinct keys, not samples.

    At most ``max_keys`` distinct ``(stack, labels)`` keys are held between
    flushes; a push that would add one more is dropped and counted, and the count
    is reported in the next snapshot. Stacks longer than ``max_frames`` are cut
    to the innermost frames plus an omitted-frames marker. All methods are safe
    to call from any thread.
    """

    def __init__(self, max_frames: int = 64, max_keys: int = DEFAULT_MAX_KEYS) -> None:
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

    def push(self, stack: Stack, labels: Labels, values: Mapping[str, int]) -> bool:
        """Add ``values`` to the aggregate of ``(stack, labels)``; False if dropped for the bound."""
        if len(stack) > self.max_frames:
            stack = truncate_stack(stack, self.max_frames)
        key = (stack, labels)
        with self._lock:
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
            data, dropped, start = self._data, self._dropped, self._start_ns
            self._data, self._dropped, self._start_ns = {}, 0, now
        return RecorderSnapshot(start, now, data, dropped)

    def reset_after_fork(self) -> None:
        """In a forked child: discard the parent's unflushed data and replace a lock another thread may have held."""
        self._lock = _allocate_lock()
        self._data = {}
        self._dropped = 0
        self._start_ns = time.time_ns()

    def __len__(self) -> int:
        return len(self._data)
