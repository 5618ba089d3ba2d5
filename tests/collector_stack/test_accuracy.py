"""Ground truth: a()/b() burn CPU for 70/30 ms and c() sleeps 50 ms; shares checked against what was spent."""

import threading
import time

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_stack.collector import StackCollector, can_read_without_gil
from workload import Truth, deep, profile_shares

ROUNDS = 40  # 40 x 150 ms = 6 s

# Timing-sensitive: scripts/run-tests.py runs these alone, after the parallel suite.
pytestmark = pytest.mark.accuracy


needs_gil_free = pytest.mark.skipif(
    not can_read_without_gil(), reason="process_vm_readv is not allowed here: stacks are read with the GIL"
)


def profile_run(main_works, worker_works, gil_free=True):
    truth = Truth()
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(), gil_free=gil_free)
    collector.start()
    try:
        worker = threading.Thread(target=truth.run if worker_works else lambda n: None, args=(ROUNDS,), name="worker")
        worker.start()
        if main_works:
            truth.run(ROUNDS)
        worker.join()
    finally:
        collector.stop()
    assert collector.sampler.reading_without_gil == (gil_free and can_read_without_gil())
    return truth, recorder.flush().samples


def check_single(truth, samples, name):
    wall, _ = profile_shares(samples, "wall-time", name)
    expected = truth.wall_pct(name)
    # Nominal split 46.7 / 20 / 33.3; the measured one differs by a fraction of a point.
    for fn, nominal in (("a", 46.7), ("b", 20.0), ("c", 33.3)):
        assert expected[fn] == pytest.approx(nominal, abs=1.5), expected
        assert wall[fn] == pytest.approx(expected[fn], abs=3), (wall, expected)
    _, cpu = profile_shares(samples, "cpu-time", name)
    ab = cpu["a"] + cpu["b"]
    assert 100.0 * cpu["a"] / ab == pytest.approx(70, abs=3), cpu
    assert cpu["c"] < 0.03 * ab, cpu  # c() sleeps: no meaningful CPU


# Another process or a neighbouring VM taking this 2-core machine's CPU for a moment moves a share
# by a few points (about one run in twenty-five here, and rarely two runs in a row): up to two fresh
# measurements are allowed, never a looser bound. A sampler that is wrong fails all three.
ATTEMPTS = 3


def measure_and_check(check, **run):
    for attempt in range(ATTEMPTS):
        try:
            return check(*profile_run(**run))
        except AssertionError as error:
            if attempt == ATTEMPTS - 1:
                raise
            print("measurement %d outside the bounds, measuring again: %s" % (attempt + 1, error))


def check_single_measured(main_works, name, gil_free=True):
    measure_and_check(lambda truth, samples: check_single(truth, samples, name),
                      main_works=main_works, worker_works=not main_works, gil_free=gil_free)


@needs_gil_free
def test_main_thread_split():
    check_single_measured(True, "MainThread")


@needs_gil_free
def test_worker_thread_split():
    check_single_measured(False, "worker")


def test_main_thread_split_read_with_the_gil():
    """The fallback where safe reads are not allowed: the sampler reads stacks itself, with the GIL."""
    check_single_measured(True, "MainThread", gil_free=False)


@needs_gil_free
def test_main_and_worker_at_once():
    """Both threads burn pure-Python CPU at once and fight for the GIL.

    Each thread is labelled as itself and gets its own elapsed time. What each
    function really got then varies (a thread's b() may run alone while the other
    sleeps), so shares are checked against the measured truth, with the same bounds
    as one thread alone: stacks are captured without the GIL, at moments the busy
    threads cannot delay (the GIL-bound fallback is checked on one thread below).
    """
    measure_and_check(check_both, main_works=True, worker_works=True)  # same bounds, same retries


def check_both(truth, samples):
    main_native = threading.get_native_id()
    natives = {}
    for (_stack, labels), _values in samples.items():
        d = dict(labels)
        natives.setdefault(d.get("thread name"), set()).add(d["thread native id"])
    assert natives["MainThread"] == {main_native}
    assert len(natives["worker"]) == 1 and natives["worker"] != {main_native}
    for name in ("MainThread", "worker"):
        _, totals = profile_shares(samples, "wall-time", name)
        assert sum(totals.values()) / 1e9 == pytest.approx(sum(truth.wall[name].values()), rel=0.05)
        wall, _ = profile_shares(samples, "wall-time", name)
        expected = truth.wall_pct(name)
        for fn in "abc":
            assert wall[fn] == pytest.approx(expected[fn], abs=3), (name, wall, expected)
        _, cpu = profile_shares(samples, "cpu-time", name)
        ab = cpu["a"] + cpu["b"]
        assert 100.0 * cpu["a"] / ab == pytest.approx(truth.cpu_pct_ab(name)["a"], abs=3), (name, cpu)
        assert cpu["c"] < 0.03 * ab, (name, cpu)


def test_wall_time_total_matches_elapsed():
    truth, samples = profile_run(main_works=False, worker_works=True)
    _, totals = profile_shares(samples, "wall-time", "worker")
    assert sum(totals.values()) / 1e9 == pytest.approx(sum(truth.wall["worker"].values()), rel=0.05)


def test_adaptive_interval_keeps_overhead_under_budget_with_100_deep_threads():
    release = threading.Event()
    threads = [threading.Thread(target=deep, args=(60, release), name="deep-%d" % i) for i in range(100)]
    for t in threads:
        t.start()
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(max_time_usage_pct=1.0))
    collector.start()
    try:
        wall0 = time.monotonic()
        time.sleep(1.5)
        wall = time.monotonic() - wall0
    finally:
        collector.stop()
        release.set()
        for t in threads:
            t.join()
    assert collector.interval > collector.min_interval  # it adapted
    samples = recorder.flush().totals()["wall-samples"]
    ticks = samples / 101
    # fewer ticks than at the minimum interval: the budget slowed it down
    assert ticks < 0.8 * wall / collector.min_interval
