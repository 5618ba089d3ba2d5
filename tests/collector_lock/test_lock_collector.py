"""The lock collector: what it patches and restores, and what it records."""

import asyncio
import gc
import weakref
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

from drainers import run_beside_drainers
from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_lock import _lock
from profiler_lock.collector import LockCollector

ORIGINAL_LOCK = threading.Lock
ORIGINAL_CRLOCK = threading._CRLock


@pytest.fixture
def collector():
    recorder = Recorder()
    c = LockCollector(recorder, ProfilerConfig(capture_pct=100.0))
    c.start()
    try:
        yield c
    finally:
        c.stop()


def samples(c):
    """``{lock name: summed values}`` and the raw samples, after draining the collector."""
    c.snapshot()
    raw = c.recorder.flush().samples
    by_name = {}
    for (stack, labels), values in raw.items():
        d = dict(labels)
        acc = by_name.setdefault(d["lock name"], {})
        for k, v in values.items():
            acc[k] = acc.get(k, 0) + v
    return by_name, raw


def test_start_patches_and_stop_restores(collector):
    assert threading.Lock is _lock.Lock
    assert threading._CRLock is _lock.RLock
    assert isinstance(threading.RLock(), _lock.RLock)
    assert isinstance(threading.Condition()._lock, _lock.RLock)
    assert isinstance(queue.Queue().mutex, _lock.Lock)
    assert isinstance(threading.Semaphore()._cond._lock, _lock.Lock)
    collector.stop()
    assert threading.Lock is ORIGINAL_LOCK
    assert threading._CRLock is ORIGINAL_CRLOCK
    assert not isinstance(threading.Lock(), _lock.Lock)


def test_lock_name_is_creation_site_and_variable(collector):
    global module_lock
    module_lock = threading.Lock()
    line = sys._getframe().f_lineno - 1
    with module_lock:
        pass

    class Holder:
        def __init__(self):
            self._guard = threading.RLock()

        def work(self):
            with self._guard:
                pass

    Holder().work()
    local_lock = threading.Lock()
    local_lock.acquire()
    local_lock.release()
    names = set(samples(collector)[0])
    assert "test_lock_collector.py:%d:module_lock" % line in names
    assert any(n.endswith(":_guard") for n in names)
    assert any(n.endswith(":local_lock") for n in names)


def test_values_thread_labels_and_caller_stack(collector):
    lock = threading.Lock()

    def caller():
        with lock:
            time.sleep(0.01)

    caller()
    by_name, raw = samples(collector)
    (values,) = [v for n, v in by_name.items() if n.endswith(":lock")]
    assert values["lock-acquire"] == 1 and values["lock-release"] == 1
    assert values["lock-release-hold"] >= 10_000_000
    for (stack, labels), _ in raw.items():
        d = dict(labels)
        if d["lock name"].endswith(":lock"):
            assert stack[0].function.endswith("caller")
            assert d["thread name"] == threading.current_thread().name
            assert d["thread id"] == threading.get_ident()
            assert not any("profiler_lock" in f.filename for f in stack)


def test_unsampled_release_and_failed_acquire_record_nothing(collector):
    lock = threading.Lock()
    _lock.arm(None)
    lock.acquire()  # not sampled...
    _lock.arm(collector._sampler)
    lock.release()  # ...so its release records nothing
    lock.acquire()  # sampled (every acquire is, at 100%)
    assert lock.acquire(False) is False  # sampled too, but failed: nothing
    lock.release()
    by_name, _ = samples(collector)
    (values,) = [v for name, v in by_name.items() if name.endswith(":lock")]
    assert values["lock-acquire"] == 1 and values["lock-release"] == 1


def test_release_by_another_thread_is_recorded_there(collector):
    lock = threading.Lock()
    lock.acquire()
    t = threading.Thread(target=lock.release, name="releaser")
    t.start()
    t.join(5)
    _, raw = samples(collector)
    releases = [dict(labels) for (stack, labels), v in raw.items() if "lock-release" in v]
    releases = [r for r in releases if r["lock name"].endswith(":lock")]
    assert [r["thread name"] for r in releases] == ["releaser"]


def test_capture_rate_estimates_counts():
    recorder = Recorder()
    c = LockCollector(recorder, ProfilerConfig(capture_pct=1.0))
    c.start()
    try:
        lock = threading.Lock()
        n = 200_000
        for _ in range(n):
            with lock:
                pass
    finally:
        c.stop()
    by_name, _ = samples(c)
    (values,) = [v for name, v in by_name.items() if name.endswith(":lock")]
    # Each sampled event counts once (as in ddtrace); the rate recorded for the profile scales it up.
    rates = c.sampling_rates()
    assert rates == {t: 0.01 for t in ("lock-acquire", "lock-acquire-wait", "lock-release", "lock-release-hold")}
    assert abs(values["lock-acquire"] / rates["lock-acquire"] - n) < 0.15 * n
    assert abs(values["lock-release"] / rates["lock-release"] - n) < 0.15 * n


def test_drops_nothing_across_many_threads(collector):
    lock = threading.Lock()
    per_thread, nthreads = 500, 4

    def work():
        for _ in range(per_thread):
            with lock:
                pass

    threads = [threading.Thread(target=work) for _ in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    by_name, _ = samples(collector)
    (values,) = [v for name, v in by_name.items() if name.endswith(":lock")]
    assert values["lock-acquire"] == per_thread * nthreads == values["lock-release"]


def test_asyncio_lock_and_semaphore(collector):
    async def main():
        lock = asyncio.Lock()
        sem = asyncio.BoundedSemaphore(2)

        async def holder():
            async with lock:
                await asyncio.sleep(0.02)

        async def waiter():
            await asyncio.sleep(0)
            async with lock:
                pass

        await asyncio.gather(holder(), waiter())
        async with sem:
            pass
        with pytest.raises(ValueError):
            sem.release()
        return lock, sem

    lock, sem = asyncio.run(main())
    assert type(lock).__module__ == "profiler_lock.asyncio_locks"
    by_name, _ = samples(collector)
    (lock_values,) = [v for n, v in by_name.items() if n.endswith(":lock")]
    assert lock_values["lock-acquire"] == 2
    assert lock_values["lock-acquire-wait"] >= 10_000_000
    assert lock_values["lock-release-hold"] >= 20_000_000
    (sem_values,) = [v for n, v in by_name.items() if n.endswith(":sem")]
    assert sem_values["lock-acquire"] == 1 and sem_values["lock-release"] == 1
    collector.stop()
    assert asyncio.Lock.__module__ == "asyncio.locks"


def test_asyncio_imported_later_is_patched_then_restored():
    code = """
import sys, threading
from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_lock.collector import LockCollector
assert "asyncio" not in sys.modules
c = LockCollector(Recorder(), ProfilerConfig())
c.start()
import asyncio
import gc
import weakref
assert asyncio.Lock.__module__ == "profiler_lock.asyncio_locks", asyncio.Lock
assert asyncio.locks.Lock is asyncio.Lock
c.stop()
assert asyncio.Lock.__module__ == "asyncio.locks"
assert not any(type(f).__name__ == "PostImportHook" for f in sys.meta_path)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_recording_errors_never_reach_the_program():
    def broken_push(*args):
        raise RuntimeError("recorder is broken")

    sampler = _lock.Sampler(broken_push, 1.0, 64, 5)
    _lock.arm(sampler)
    try:
        lock = _lock.Lock()
        for _ in range(10):
            with lock:
                pass
        with pytest.raises(RuntimeError):
            sampler.drain()  # the collector's own call, from the scheduler: logged there
    finally:
        _lock.arm(None)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_threading_works_in_a_forked_child(collector):
    event = threading.Event()  # a Condition over a profiled Lock, reinitialised by threading at fork
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            t = threading.Thread(target=event.set)
            t.start()
            t.join(5)
            code = 0 if event.is_set() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_disabled_by_config():
    assert LockCollector.is_enabled(ProfilerConfig())
    assert not LockCollector.is_enabled(ProfilerConfig(lock_enabled=False))


def test_capture_zero_installs_the_types_and_samples_nothing():
    c = LockCollector(Recorder(), ProfilerConfig(capture_pct=0.0))
    c.start()
    try:
        assert threading.Lock is _lock.Lock
        lock = threading.Lock()
        for _ in range(1000):
            with lock:
                pass
    finally:
        c.stop()
    c.snapshot()
    assert not c.recorder.flush().samples


def test_a_name_lookup_that_fails_never_reaches_the_program(collector):
    class Hostile:
        @property
        def __dict__(self):  # what the name lookup reads on `self`
            raise RuntimeError("no dict for you")

        def work(self, holder):
            with holder[0]:  # the lock is in no variable of this frame: `self` is looked at
                return True

    holder = [threading.Lock()]
    line = sys._getframe().f_lineno - 1
    assert Hostile().work(holder) is True
    names = set(samples(collector)[0])
    assert "test_lock_collector.py:%d" % line in names


def test_lock_samples_carry_the_running_asyncio_task(collector):
    """A lock taken inside an asyncio task is labelled with that task's id and name (issue #18);
    one taken outside any task has no task labels."""
    outside = threading.Lock()
    with outside:
        pass

    async def worker(lock, thread_lock):
        for _ in range(3):
            async with lock:
                with thread_lock:
                    await asyncio.sleep(0)

    async def main():
        lock = asyncio.Lock()
        thread_lock = threading.Lock()
        tasks = [asyncio.create_task(worker(lock, thread_lock), name="worker-%d" % i) for i in range(2)]
        await asyncio.gather(*tasks)
        return {t.get_name(): id(t) for t in tasks}

    ids = asyncio.run(main())
    _, raw = samples(collector)
    by_task = {}
    for (stack, labels), values in raw.items():
        d = dict(labels)
        if d["lock name"].endswith(":outside"):
            assert "task name" not in d and "task id" not in d, d
            continue
        if not d["lock name"].endswith(("lock", "thread_lock")):
            continue
        assert d["task id"] == ids[d["task name"]], d
        acc = by_task.setdefault((d["task name"], d["lock name"].rsplit(":", 1)[-1]), 0)
        by_task[(d["task name"], d["lock name"].rsplit(":", 1)[-1])] = acc + values.get("lock-acquire", 0)
    assert by_task == {
        ("worker-0", "lock"): 3, ("worker-1", "lock"): 3,
        ("worker-0", "thread_lock"): 3, ("worker-1", "thread_lock"): 3,
    }, by_task


def test_condition_semaphore_and_queue_locks_are_named_after_their_variable(collector):
    """As ddtrace names them (``locks.py:17:cond``): the variable holding the Condition, the
    Semaphore or the queue around the lock (they were the creation site alone)."""
    import queue

    cond = threading.Condition()
    cond_line = sys._getframe().f_lineno - 1
    sem = threading.Semaphore(1)
    sem_line = sys._getframe().f_lineno - 1
    jobs = queue.Queue()
    jobs_line = sys._getframe().f_lineno - 1
    with cond:
        cond.notify_all()
    with sem:
        pass
    jobs.put(1)
    jobs.get()
    names = set(samples(collector)[0])
    assert "test_lock_collector.py:%d:cond" % cond_line in names, names
    assert "test_lock_collector.py:%d:sem" % sem_line in names, names
    assert "test_lock_collector.py:%d:jobs" % jobs_line in names, names


def test_naming_runs_no_attribute_hook_of_the_program(collector):
    """Looking for the variable that holds a lock reads plain instance dictionaries only."""
    calls = []

    class Lazy:
        def __getattr__(self, name):
            calls.append(name)
            raise AttributeError(name)

        def __getattribute__(self, name):
            calls.append(name)
            return object.__getattribute__(self, name)

    lazy = Lazy()  # noqa: F841 (a local the name lookup walks past)
    hidden = threading.Lock()  # noqa: F841
    with threading.Lock():
        pass
    samples(collector)
    assert calls == []


def test_with_the_timeline_each_sampled_event_keeps_its_moment():
    """Each sampled acquire and release is its own sample, stamped when it happened; past the
    per-period bound they are summed as before, nothing lost."""
    recorder = Recorder(timeline=True)
    c = LockCollector(recorder, ProfilerConfig(capture_pct=100.0))
    c.start()
    try:
        timeline_lock = threading.Lock()
        moments = []
        for _ in range(20):
            before = time.monotonic_ns()
            with timeline_lock:
                pass
            moments.append((before, time.monotonic_ns()))
        c.snapshot()
        snapshot = recorder.flush()
    finally:
        c.stop()
    offset = time.time_ns() - time.monotonic_ns()
    mine = [(moment, values) for (_s, labels), moment, values in snapshot.timed
            if dict(labels)["lock name"].endswith(":timeline_lock")]
    acquires = [moment for moment, values in mine if values.get("lock-acquire")]
    releases = [moment for moment, values in mine if values.get("lock-release")]
    assert len(acquires) == 20 and len(releases) == 20, mine[:4]
    for (before, after), acquired, released in zip(moments, sorted(acquires), sorted(releases)):
        # epoch nanoseconds; the offset between the clocks is read again here, a few µs apart
        assert before + offset - 1_000_000 <= acquired <= released <= after + offset + 1_000_000
    assert not any(dict(labels)["lock name"].endswith(":timeline_lock") for _s, labels in snapshot.samples)


def _events_of(snapshot, variable):
    """Acquires and releases of the locks held in ``variable``: (timestamped, summed)."""
    def events(pairs):
        return sum(values.get("lock-acquire", 0) + values.get("lock-release", 0)
                   for labels, values in pairs if dict(labels)["lock name"].endswith(":" + variable))

    return (events((labels, values) for (_s, labels), _m, values in snapshot.timed),
            events((labels, values) for (_s, labels), values in snapshot.samples.items()))


def test_events_past_the_timeline_bound_are_summed():
    recorder = Recorder(timeline=True)
    c = LockCollector(recorder, ProfilerConfig(capture_pct=100.0))
    c.start()
    try:
        many_lock = threading.Lock()
        count = _lock.MAX_TIMED_EVENTS  # acquires and releases: twice the bound
        for _ in range(count):
            with many_lock:
                pass
        c.snapshot()
        snapshot = recorder.flush()
    finally:
        c.stop()
    timed, summed = _events_of(snapshot, "many_lock")
    assert timed <= _lock.MAX_TIMED_EVENTS and summed > 0
    assert timed + summed == 2 * count


def test_drains_while_threads_record_count_every_event_once():
    """Drains push Python code, so other threads record meanwhile, and a stop may drain while the
    flush thread does: every event is pushed exactly once (the drain takes the period's events
    over before it pushes)."""
    recorder = Recorder(timeline=True)
    c = LockCollector(recorder, ProfilerConfig(capture_pct=100.0))
    c.start()
    per_thread = 3000
    try:
        def work():
            busy_lock = threading.Lock()
            for _ in range(per_thread):
                with busy_lock:
                    pass

        run_beside_drainers(work, c.snapshot, workers=4)
        c.snapshot()
        snapshot = recorder.flush()
    finally:
        c.stop()
    timed, summed = _events_of(snapshot, "busy_lock")
    assert timed + summed == 4 * per_thread * 2


def test_code_compiled_at_run_time_is_not_kept_alive(collector):
    # Template engines and exec-built handlers make code objects that the program drops: the
    # collector's frame cache must not keep them (2.3 KB apiece), yet it names their frames.
    import gc
    import weakref

    lock = threading.Lock()
    refs = []
    for n in range(50):
        namespace = {"lock": lock}
        exec(compile("def handler_%d():\n    with lock:\n        pass\n" % n, "<generated-%d>" % n, "exec"), namespace)
        namespace["handler_%d" % n]()
        refs.append(weakref.ref(namespace["handler_%d" % n].__code__))
        del namespace
    by_name, raw = samples(collector)
    named = {frame.function for (stack, _labels) in raw for frame in stack}
    # each under its own name: a code object freed and another made at its address must not take
    # the first one's entry (its key hashes code addresses); 3.10 lost 5-16 of 50 that way
    assert {n for n in named if n.startswith("handler_")} == {"handler_%d" % i for i in range(50)}
    del raw, by_name
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_each_short_lived_task_keeps_its_own_name(collector):
    # Tasks made one after the other are often made at the address of the one before, which is
    # part of an entry's key: an entry knows its task by a weak reference, so each has its own.
    lock = threading.Lock()

    async def job():
        with lock:
            pass

    tasks = []

    async def main():
        for n in range(50):
            task = asyncio.get_running_loop().create_task(job(), name="job-%d" % n)
            tasks.append(weakref.ref(task))
            await task
            del task

    asyncio.run(main())
    gc.collect()
    # not kept alive until the drain either (a task holds its result, or its exception's frames)
    assert [t for t in tasks if t() is not None] == []
    _by_name, raw = samples(collector)
    names = {dict(labels).get("task name") for (_stack, labels) in raw}
    assert {"job-%d" % n for n in range(50)} <= names, sorted(n for n in names if n)


def test_each_short_lived_thread_keeps_its_own_name(collector):
    # A thread per request (socketserver's ThreadingMixIn): a new thread often gets the ident of
    # the one that ended, which is part of an entry's key.
    lock = threading.Lock()

    def request():
        with lock:
            pass

    for n in range(30):
        t = threading.Thread(target=request, name="request-%d" % n)
        t.start()
        t.join()
    _by_name, raw = samples(collector)
    names = {dict(labels).get("thread name") for (_stack, labels) in raw}
    assert {"request-%d" % n for n in range(30)} <= names, sorted(n for n in names if n and n.startswith("request"))
