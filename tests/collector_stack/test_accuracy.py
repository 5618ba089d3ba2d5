"""Ground truth: a()/b() burn CPU for 350/150 ms and c() sleeps 250 ms; shares checked against what was spent.

These must pass on a busy machine (a laptop, a shared CI runner), so they differ from the quiet-machine
figures of benchmarks/stack_accuracy.py (70/30/50 ms phases, which that benchmark reports):

- Phases are 5x the benchmark's. When other processes keep every core busy, the sampler's capture
  thread is scheduled late, and a late capture puts the time since the previous one on the phase it
  lands in: the error comes from phase changes, so fewer of them (same 6 s, same sample count) means
  less of it. Measured with two `while 1: pass` processes on this 2-core machine (load average 9):
  70/30/50 ms phases, worst wall share error 15.8 points and CPU split 22.4 (GIL-held reads), 2.9 and
  12.9 (reads without the GIL); 5x phases, 5.6 and 5.8.
- The bound is 3 points when the workload's threads got a CPU whenever they wanted one (they waited
  for one under 10% of their run, counted by the kernel: /proc/thread-self/schedstat), and
  LOADED_BOUND otherwise, or when the kernel does not count it. A sampler that mislays time still
  fails: wrong functions, lost sleeping time or a GIL-bound bias are tens of points. The GIL-held
  fallback reader is checked coarsely when loaded (see check_coarse): a reader that needs the GIL
  is biased by the busy threads it competes with, the more so the busier the machine.
"""

import os
import threading
import time

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_stack.collector import StackCollector, can_read_without_gil
from workload import Truth, deep, profile_shares

SCALE = 5  # phases of 350 / 150 / 250 ms
ROUNDS = 8  # 8 x 750 ms = 6 s
QUIET_BOUND = 3.0  # points of share, when the workload got the CPU it asked for
LOADED_BOUND = 8.0  # points of share, when it waited for a CPU (the worst measured loaded: 5.8)
QUIET_CPU_WAIT = 0.10  # share of a thread's run spent waiting for a CPU, below which the machine was quiet

# Timing-sensitive: scripts/run-tests.py runs these alone, after the parallel suite.
pytestmark = pytest.mark.accuracy


needs_gil_free = pytest.mark.skipif(
    not can_read_without_gil(), reason="process_vm_readv is not allowed here: stacks are read with the GIL"
)


def bound(truth):
    """Points of share allowed for this measurement: tight if the machine left the workload alone."""
    wait = truth.busiest_cpu_wait()
    return QUIET_BOUND if wait is not None and wait < QUIET_CPU_WAIT else LOADED_BOUND


def profile_run(main_works, worker_works, gil_free=True):
    truth = Truth(scale=SCALE)
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


def check_single(truth, samples, name, gil_free=True):
    wall, _ = profile_shares(samples, "wall-time", name)
    expected = truth.wall_pct(name)
    # Nominal split 46.7 / 20 / 33.3; the measured one differs by a fraction of a point on a quiet
    # machine, by up to two on a busy one (a burn loop preempted at its end overshoots).
    for fn, nominal in (("a", 46.7), ("b", 20.0), ("c", 33.3)):
        assert expected[fn] == pytest.approx(nominal, abs=4), expected
    _, cpu = profile_shares(samples, "cpu-time", name)
    if not gil_free and bound(truth) != QUIET_BOUND:
        check_coarse(wall, expected, cpu, truth)
        return
    limit = bound(truth)
    for fn in "abc":
        assert wall[fn] == pytest.approx(expected[fn], abs=limit), (wall, expected, truth.cpu_wait)
    ab = cpu["a"] + cpu["b"]
    assert 100.0 * cpu["a"] / ab == pytest.approx(truth.cpu_pct_ab(name)["a"], abs=limit), (cpu, truth.cpu_wait)
    assert 100.0 * cpu["c"] / ab < limit, (cpu, truth.cpu_wait)  # c() sleeps: no meaningful CPU


def check_coarse(wall, expected, cpu, truth):
    """What a GIL-bound reader still gets right on a busy machine.

    Its thread must win the GIL from the burning thread, and when every core is taken it does so
    mostly as the burner goes to sleep: a loaded run here once gave a/b/c 70/7/23 for a true
    48/20/32. Every function is still seen, sleeping time still counted, CPU still not given to
    sleep; the tight figures are the quiet machine's (benchmarks/stack_accuracy.py reports them).
    """
    for fn in "abc":
        assert wall[fn] > 0.25 * expected[fn], (wall, expected, truth.cpu_wait)
    ab = cpu["a"] + cpu["b"]
    assert cpu["a"] > cpu["b"], cpu
    assert 100.0 * cpu["c"] / ab < LOADED_BOUND, (cpu, truth.cpu_wait)


# A burst of load that starts after the workload measured a quiet run's first part can still move a
# share past the quiet bound: up to two fresh measurements are allowed. A sampler that is wrong fails
# all three.
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
    measure_and_check(lambda truth, samples: check_single(truth, samples, name, gil_free),
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
    limit = bound(truth)
    for name in ("MainThread", "worker"):
        _, totals = profile_shares(samples, "wall-time", name)
        assert sum(totals.values()) / 1e9 == pytest.approx(sum(truth.wall[name].values()), rel=0.05)
        wall, _ = profile_shares(samples, "wall-time", name)
        expected = truth.wall_pct(name)
        for fn in "abc":
            assert wall[fn] == pytest.approx(expected[fn], abs=limit), (name, wall, expected, truth.cpu_wait)
        _, cpu = profile_shares(samples, "cpu-time", name)
        ab = cpu["a"] + cpu["b"]
        assert 100.0 * cpu["a"] / ab == pytest.approx(truth.cpu_pct_ab(name)["a"], abs=limit), (name, cpu)
        assert 100.0 * cpu["c"] / ab < limit, (name, cpu)


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


def test_the_bound_is_tight_only_when_the_workload_got_its_cpu():
    quiet, busy, unknown = Truth(), Truth(), Truth()
    quiet.cpu_wait = {"MainThread": 0.02, "worker": 0.05}
    busy.cpu_wait = {"MainThread": 0.02, "worker": 0.4}
    unknown.cpu_wait = {"MainThread": None}
    assert bound(quiet) == QUIET_BOUND
    assert bound(busy) == LOADED_BOUND
    assert bound(unknown) == LOADED_BOUND
    assert bound(Truth()) == LOADED_BOUND


def test_the_workload_measures_its_wait_for_a_cpu():
    truth = Truth(scale=0.1)
    truth.run(2)
    wait = truth.cpu_wait["MainThread"]
    assert wait is None or 0.0 <= wait <= 1.0
    if os.path.exists("/proc/thread-self/schedstat"):
        assert wait is not None


@needs_gil_free
def test_a_thread_started_later_has_all_its_cpu_counted():
    """A thread started after sampling began has its CPU counted from its start, not from its
    first capture (which comes an interval or two later: at 50 ms, 50-100 ms of a 300 ms burn
    were lost, more on a loaded machine). It ends idle, so nothing is lost after its last capture."""
    recorder = Recorder()
    collector = StackCollector(recorder, ProfilerConfig(), min_interval=0.05)
    truth = {}

    def burst():
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        truth["cpu"] = time.thread_time()
        time.sleep(0.3)

    collector.start()
    try:
        time.sleep(0.2)  # the sampler runs and has published its first thread list
        thread = threading.Thread(target=burst, name="burst")
        thread.start()
        thread.join()
        collector.snapshot()
    finally:
        collector.stop()
    cpu = sum(values.get("cpu-time", 0) for (stack, labels), values in recorder.flush().samples.items()
              if dict(labels).get("thread name") == "burst") / 1e9
    assert 0.9 * truth["cpu"] <= cpu <= 1.1 * truth["cpu"] + 0.01, (cpu, truth)
