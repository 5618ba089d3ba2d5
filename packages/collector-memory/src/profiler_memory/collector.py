"""The memory collector: sampled allocations (``alloc-*``) and the sampled live heap (``heap-*``)."""

from __future__ import annotations

import _random  # seeded as random.Random is, never blocking; the random module costs ms to import

from profiler_core._log import get_logger
from profiler_core.interfaces import Collector
from profiler_core.threads import PROFILER_THREADS, THREAD_LISTENERS

from profiler_memory import _memalloc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict

    from profiler_core.config import ProfilerConfig
    from profiler_core.recorder import Recorder

LOG = get_logger("profiler_memory")

# Bounds on native memory: distinct stacks (sums per stack between two flushes, and the stacks of
# live allocations), and live allocations tracked.
MAX_STACKS = 8192
MAX_LIVE = 16384


def _publish_profiler_threads() -> None:
    # Tell the hooks which threads are the profiler's (called whenever that changes).
    _memalloc.set_ignored_threads(PROFILER_THREADS)  # iterated in place: nothing allocated here


class MemoryCollector(Collector):
    """Samples one allocation in every ``DD_PROFILING_HEAP_SAMPLE_SIZE`` bytes on average (Poisson).

    Hooks CPython's object and mem allocators natively. Each sample adds ``alloc-samples`` and ``alloc-space``, divided by its
    probability of being sampled, so sums estimate every allocation's count and
    bytes. Thread names are resolved when the samples are turned into profile
    data, at flush: a thread that ended before has its id labels only.
    ``DD_PROFILING_HEAP_ENABLED``: sampled allocations are tracked until
    freed, and every flush reports those still alive as ``heap-space`` (estimated
    live bytes) and ``heap-live-samples`` (estimated live blocks, as ddtrace's). Bounded: samples beyond the bounds are
    dropped and counted (``stats()``). What the profiler's own threads allocate is left out.
    """

    name = "memory"
    sample_types = ("alloc-samples", "alloc-space", "heap-space", "heap-live-samples")

    def __init__(self, recorder: "Recorder", config: "ProfilerConfig") -> None:
        super().__init__(recorder, config)
        self.mean = float(config.heap_sample_size) or 1024.0 * 1024.0
        self.allocs = True
        self.heap = bool(config.heap_enabled)
        self._converter = _memalloc.Converter()
        self._running = False
        self._reported_drops = 0
        self._final_heap: "Dict" = {}

    @classmethod
    def is_enabled(cls, config: "ProfilerConfig") -> bool:
        """``DD_PROFILING_MEMORY_ENABLED`` (default true) with a sample size above 0, as in ddtrace, where
        ``DD_PROFILING_HEAP_ENABLED`` only chooses whether the live heap is reported too."""
        return bool(config.memory_enabled) and config.heap_sample_size > 0

    def start(self) -> None:
        """Install the allocator hooks."""
        if self._running:
            return
        _publish_profiler_threads()
        if _publish_profiler_threads not in THREAD_LISTENERS:
            THREAD_LISTENERS.append(_publish_profiler_threads)
        _memalloc.start(
            self.mean, self.config.max_frames, self.allocs, self.heap, MAX_STACKS, MAX_LIVE, _random.Random().getrandbits(64)
        )
        self._running = True

    def stop(self) -> None:
        """Remove the hooks (or leave them passing through, when another hook sits on top of them)."""
        if not self._running:
            return
        self._running = False
        self._push_allocations()
        # The heap as it is at stop, for the last profile (at exit, the scheduler flushes after stop).
        self._final_heap = _memalloc.heap_snapshot(self._converter) if self.heap else {}
        if not _memalloc.stop():
            LOG.info("memory profiler stopped; its allocator hook stays under a later one, passing through")

    def snapshot(self) -> None:
        """Push the allocations sampled since the last flush and the live heap as it is now."""
        self._push_allocations()
        if self._running and self.heap:
            heap = _memalloc.heap_snapshot(self._converter)
        else:
            heap, self._final_heap = self._final_heap, {}
        for (stack, labels), (space, live) in heap.items():
            self.recorder.push(stack, labels, {"heap-space": int(space + 0.5), "heap-live-samples": int(live + 0.5)})
        stats = _memalloc.stats()
        drops = stats["dropped_events"] + stats["dropped_heap"] + stats["dropped_nomem"]
        if drops > self._reported_drops:
            LOG.warning("memory profiler: %d samples dropped at its bounds so far", drops)
            self._reported_drops = drops

    def _push_allocations(self) -> None:
        if not self.allocs:
            return
        for (stack, labels), (count, space) in _memalloc.drain_allocations(self._converter).items():
            self.recorder.push(stack, labels, {"alloc-samples": int(count + 0.5), "alloc-space": int(space + 0.5)})

    def after_fork_in_child(self) -> None:
        """The parent's pending samples are not the child's; live allocations are inherited and stay tracked."""
        _memalloc.discard_allocations()

    def stats(self) -> "Dict[str, float]":
        """Native counters: live tracked allocations, pending samples, drops at each bound."""
        return _memalloc.stats()
