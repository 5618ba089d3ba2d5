"""Ground truth: a()/b() burn CPU for 70/30 ms and c() sleeps 50 ms, in a worker and the main thread at once."""

import threading
import time

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_stack.collector import StackCollector

ROUNDS = 16  # 16 x 150 ms = 2.4 s


def burn(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def a():
    burn(0.070)


def b():
    burn(0.030)


def c():
    time.sleep(0.050)


def workload():
    for _ in range(ROUNDS):
        a()
        b()
        c()


def shares(samples, sample_type, thread_name):
    totals = {"a": 0, "b": 0, "c": 0}
    for (stack, labels), values in samples.items():
        if dict(labels).get("thread name") != thread_name:
            continue
        names = {f.function for f in stack}
        for fn in totals:
            if fn in names:
                totals[fn] += values.get(sample_type, 0)
    total = sum(totals.values())
    return {k: 100.0 * v / total for k, v in totals.items()}, totals


@pytest.fixture(scope="module")
def profile():
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig())
    collector.start()
    try:
        worker = threading.Thread(target=workload, name="worker")
        worker.start()
        workload()
        worker.join()
    finally:
        collector.stop()
    return recorder.flush().samples


@pytest.mark.parametrize("thread_name", ["MainThread", "worker"])
def test_wall_time_shares(profile, thread_name):
    pct, _ = shares(profile, "wall-time", thread_name)
    assert pct["a"] == pytest.approx(46.7, abs=3), pct
    assert pct["b"] == pytest.approx(20.0, abs=3), pct
    assert pct["c"] == pytest.approx(33.3, abs=3), pct


@pytest.mark.parametrize("thread_name", ["MainThread", "worker"])
def test_cpu_time_shares(profile, thread_name):
    pct, totals = shares(profile, "cpu-time", thread_name)
    ab = totals["a"] + totals["b"]
    assert 100.0 * totals["a"] / ab == pytest.approx(70, abs=3), pct
    assert 100.0 * totals["b"] / ab == pytest.approx(30, abs=3), pct
    # c() sleeps: no meaningful CPU
    assert totals["c"] < 0.03 * ab, totals


def test_wall_time_total_matches_elapsed(profile):
    _, totals = shares(profile, "wall-time", "worker")
    expected_ns = ROUNDS * 0.150 * 1e9
    assert sum(totals.values()) == pytest.approx(expected_ns, rel=0.1)
