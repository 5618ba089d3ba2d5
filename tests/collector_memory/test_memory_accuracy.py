"""Memory profile against ground truth taken by tracemalloc on the same allocations."""

import gc
import itertools
import tracemalloc

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_memory.collector import MemoryCollector

pytestmark = pytest.mark.accuracy

N = 10_000
SMALL = 200 - 33  # payload making a 200-byte bytes object (33 bytes of header on 64-bit CPython)
LARGE = 600 - 33  # 3x the bytes of SMALL, in as many objects
# Loop indexes made once: an int made per iteration (and freed at once) would be an allocation of
# f and g that the profile rightly counts but a tracemalloc snapshot of live memory does not see.
INDEXES = list(range(N))


def f():
    out = [None] * N
    for i in INDEXES:
        out[i] = bytes(LARGE)
    return out


def g():
    out = [None] * N
    for i in INDEXES:
        out[i] = bytes(SMALL)
    return out


def traced_by_function(snapshot, functions):
    """Bytes tracemalloc saw allocated on the lines of each function."""
    out = {fn.__name__: 0 for fn in functions}
    for stat in snapshot.statistics("lineno"):
        frame = stat.traceback[0]
        for fn in functions:
            code = fn.__code__
            lines = {line for _, _, line in code.co_lines() if line is not None}
            if frame.filename == code.co_filename and frame.lineno in lines:
                out[fn.__name__] += stat.size
    return out


def profile_by_function(samples, sample_type):
    out = {}
    for (stack, labels), values in samples.items():
        if sample_type in values and stack:
            out[stack[0].function] = out.get(stack[0].function, 0) + values[sample_type]
    return out


def test_allocated_bytes_split_and_total_match_tracemalloc():
    # Ground truth: one round under tracemalloc, with everything kept alive while measured.
    tracemalloc.start()
    kept = (f(), g())
    truth_round = traced_by_function(tracemalloc.take_snapshot(), [f, g])
    tracemalloc.stop()
    del kept
    assert truth_round["f"] > 2.9 * truth_round["g"]

    rounds = 25
    collector = MemoryCollector(Recorder(), ProfilerConfig(heap_sample_size=8 * 1024, heap_enabled=False))
    collector.start()
    try:
        for _ in itertools.repeat(None, rounds):
            kept = (f(), g())
            del kept
    finally:
        collector.stop()
    collector.snapshot()
    est = profile_by_function(collector.recorder.flush().samples, "alloc-space")
    truth = {name: size * rounds for name, size in truth_round.items()}
    ratio = est["f"] / est["g"]
    assert abs(ratio - truth["f"] / truth["g"]) <= 0.1 * truth["f"] / truth["g"], (est, truth)
    total_est, total_truth = est["f"] + est["g"], truth["f"] + truth["g"]
    assert abs(total_est - total_truth) <= 0.15 * total_truth, (est, truth)


def test_live_heap_shows_what_f_keeps_and_nothing_of_what_g_freed():
    collector = MemoryCollector(Recorder(), ProfilerConfig(heap_sample_size=16 * 1024))
    tracemalloc.start()
    collector.start()
    try:
        leaked = [f() for _ in range(3)]
        for _ in range(3):
            g()  # allocated and freed at once
        gc.collect()
        truth = traced_by_function(tracemalloc.take_snapshot(), [f, g])
        collector.snapshot()
    finally:
        collector.stop()
        tracemalloc.stop()
    heap = profile_by_function(collector.recorder.flush().samples, "heap-space")
    assert truth["g"] == 0
    assert abs(heap.get("f", 0) - truth["f"]) <= 0.2 * truth["f"], (heap, truth)
    assert heap.get("g", 0) == 0
    del leaked
