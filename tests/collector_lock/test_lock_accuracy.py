"""Lock profile against ground truth: wait and hold times measured by the workload itself."""

import threading
import time

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_lock.collector import LockCollector

pytestmark = pytest.mark.accuracy

ROUNDS = 12
HOLD_S = 0.02


def contend(truth):
    """The holder keeps ``db_lock`` for HOLD_S at a time while the waiter queues for it; ``cache_lock``
    is used often but never contended. Both threads add what they measured to ``truth``."""
    db_lock = threading.Lock()
    cache_lock = threading.RLock()
    holder_turn = threading.Semaphore(0)
    waiter_turn = threading.Semaphore(0)

    def holder():
        for _ in range(ROUNDS):
            t0 = time.monotonic_ns()
            db_lock.acquire()
            t1 = time.monotonic_ns()
            waiter_turn.release()  # the waiter may now try, and will wait
            time.sleep(HOLD_S)
            t2 = time.monotonic_ns()
            db_lock.release()
            truth["wait"] += t1 - t0
            truth["hold"] += t2 - t1
            holder_turn.acquire()
            for _ in range(50):
                with cache_lock:
                    pass

    def waiter():
        for _ in range(ROUNDS):
            waiter_turn.acquire()
            time.sleep(0.001)  # make sure the acquire below finds the lock held
            t0 = time.monotonic_ns()
            db_lock.acquire()
            t1 = time.monotonic_ns()
            db_lock.release()
            t2 = time.monotonic_ns()
            truth["wait"] += t1 - t0
            truth["hold"] += t2 - t1
            holder_turn.release()

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_wait_and_hold_match_the_truth_and_the_hottest_lock_is_named():
    recorder = Recorder()
    collector = LockCollector(recorder, ProfilerConfig(capture_pct=100.0))
    truth = {"wait": 0, "hold": 0}
    collector.start()
    try:
        contend(truth)
    finally:
        collector.stop()
    collector.snapshot()
    totals = {}
    for (stack, labels), values in recorder.flush().samples.items():
        name = dict(labels)["lock name"]
        acc = totals.setdefault(name, {"wait": 0, "hold": 0})
        acc["wait"] += values.get("lock-acquire-wait", 0)
        acc["hold"] += values.get("lock-release-hold", 0)
    (db,) = [v for name, v in totals.items() if name.endswith(":db_lock")]
    assert abs(db["wait"] - truth["wait"]) <= 0.2 * truth["wait"], (db, truth)
    assert abs(db["hold"] - truth["hold"]) <= 0.2 * truth["hold"], (db, truth)
    hottest = max(totals, key=lambda name: totals[name]["wait"])
    assert hottest.endswith(":db_lock"), totals
    assert truth["hold"] >= ROUNDS * HOLD_S * 1e9
