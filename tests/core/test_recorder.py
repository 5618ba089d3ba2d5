import threading

import pytest

from profiler_core.events import Frame, Sample
from profiler_core.recorder import Recorder

A = (Frame("a.py", "a", 1), Frame("m.py", "main", 10))
B = (Frame("b.py", "b", 2), Frame("m.py", "main", 10))
T1 = (("thread id", 1),)
T2 = (("thread id", 2),)


def test_aggregates_by_stack_and_labels():
    r = Recorder()
    for _ in range(3):
        r.push(A, T1, {"wall-time": 10, "wall-samples": 1})
    r.push(A, T2, {"wall-time": 5})
    r.push(B, T1, {"cpu-time": 7})
    snap = r.flush()
    assert len(snap.samples) == 3
    assert snap.samples[(A, T1)] == {"wall-time": 30, "wall-samples": 3}
    assert snap.samples[(A, T2)] == {"wall-time": 5}
    assert snap.samples[(B, T1)] == {"cpu-time": 7}
    assert snap.totals() == {"wall-time": 35, "wall-samples": 3, "cpu-time": 7}
    assert snap.dropped == 0


def test_record_accepts_typed_samples():
    r = Recorder()
    r.record(Sample(stack=A, values={"cpu-time": 3}, thread_id=1))
    assert r.flush().samples[(A, T1)] == {"cpu-time": 3}


def test_bound_drops_new_keys_and_counts_them_but_keeps_existing():
    r = Recorder(max_keys=2)
    assert r.push(A, T1, {"wall-time": 1})
    assert r.push(B, T1, {"wall-time": 1})
    assert not r.push(A, T2, {"wall-time": 1})
    assert not r.push(B, T2, {"wall-time": 1})
    assert r.push(A, T1, {"wall-time": 1})  # existing keys still aggregate
    snap = r.flush()
    assert len(snap.samples) == 2
    assert snap.dropped == 2
    assert snap.samples[(A, T1)] == {"wall-time": 2}
    # the bound is per period: after a flush there is room again
    assert r.push(A, T2, {"wall-time": 1})
    assert r.flush().dropped == 0


def test_flush_swaps_atomically_and_times_periods():
    r = Recorder()
    r.push(A, T1, {"wall-time": 1})
    first = r.flush()
    second = r.flush()
    assert len(first.samples) == 1 and len(second.samples) == 0
    assert first.end_ns == second.start_ns
    assert first.start_ns <= first.end_ns <= second.end_ns


def test_long_stacks_are_truncated_at_push():
    r = Recorder(max_frames=5)
    deep = tuple(Frame("d.py", "f%d" % i, i) for i in range(50))
    r.push(deep, (), {"wall-time": 1})
    ((stack, _labels),) = r.flush().samples
    assert len(stack) == 5
    assert stack[-1].function == "<46 frames omitted>"


def test_concurrent_pushes_lose_nothing():
    r = Recorder()
    n_threads, n = 8, 2000
    barrier = threading.Barrier(n_threads)

    def work(i):
        barrier.wait()
        for _ in range(n):
            r.push(A if i % 2 else B, T1, {"wall-samples": 1})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.flush().totals() == {"wall-samples": n_threads * n}


def test_concurrent_flush_never_loses_or_duplicates():
    r = Recorder()
    flushed = []
    stop = threading.Event()

    def flusher():
        while not stop.is_set():
            flushed.append(r.flush().totals().get("wall-samples", 0))

    t = threading.Thread(target=flusher)
    t.start()
    for _ in range(20000):
        r.push(A, T1, {"wall-samples": 1})
    stop.set()
    t.join()
    flushed.append(r.flush().totals().get("wall-samples", 0))
    assert sum(flushed) == 20000


def test_reset_after_fork_discards_data():
    r = Recorder()
    r.push(A, T1, {"wall-time": 1})
    r._lock.acquire()  # as if another thread held it at fork time
    r.reset_after_fork()
    r.push(B, T1, {"wall-time": 1})
    assert list(r.flush().samples) == [(B, T1)]


def test_invalid_bounds_are_rejected():
    with pytest.raises(ValueError):
        Recorder(max_frames=0)
    with pytest.raises(ValueError):
        Recorder(max_keys=0)
