"""CPython's lock semantics, checked against the original types and the profiled ones alike.

Each test runs on ``_thread.lock``/``_thread.RLock`` and on the profiled types,
with sampling off and with every acquire sampled, so the sampled paths keep
the semantics too.
"""

import _thread
import os
import pickle
import signal
import sys
import threading
import time
import weakref

import pytest

from profiler_core.recorder import Recorder
from profiler_lock import _lock

MODES = ["original", "profiled", "profiled-sampled"]


@pytest.fixture(params=MODES)
def mode(request):
    if request.param == "profiled-sampled":
        _lock.arm(_lock.Sampler(Recorder().push, 1.0, 64, 7))
    else:
        _lock.arm(None)
    yield request.param
    _lock.arm(None)


@pytest.fixture
def make_lock(mode):
    return _thread.allocate_lock if mode == "original" else _lock.Lock


@pytest.fixture
def make_rlock(mode):
    return _thread.RLock if mode == "original" else _lock.RLock


def check_recursion_count(lock, expected):
    """``lock._recursion_count() == expected``; not checked for ``_thread.RLock`` before 3.11, which
    lacks the method (ours has it on every version)."""
    if isinstance(lock, _thread.RLock) and sys.version_info < (3, 11):
        return
    assert lock._recursion_count() == expected


def run_in_thread(fn):
    """Run ``fn`` in another thread; its result or exception."""
    out = {}

    def target():
        try:
            out["result"] = fn()
        except BaseException as e:  # handed back to the test
            out["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join(10)
    assert not t.is_alive()
    if "error" in out:
        raise out["error"]
    return out["result"]


# -- both types --------------------------------------------------------------------------


@pytest.fixture(params=["lock", "rlock"])
def any_lock(request, make_lock, make_rlock):
    return make_lock if request.param == "lock" else make_rlock


def test_acquire_release(any_lock):
    lock = any_lock()
    assert lock.acquire() is True
    lock.release()
    assert lock.acquire(True) is True
    lock.release()
    assert lock.acquire(blocking=True, timeout=0.01) is True
    lock.release()


def test_context_manager(any_lock):
    lock = any_lock()
    with lock as entered:
        assert entered is True
        assert run_in_thread(lambda: lock.acquire(False)) is False
    assert run_in_thread(lambda: (lock.acquire(False), lock.release())[0]) is True


def test_release_unheld_raises(any_lock):
    lock = any_lock()
    with pytest.raises(RuntimeError):
        lock.release()
    with lock:
        pass
    with pytest.raises(RuntimeError):
        lock.release()


def test_timeout_validation(any_lock):
    lock = any_lock()
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(timeout=-2)
    with pytest.raises(OverflowError):
        lock.acquire(timeout=_thread.TIMEOUT_MAX + 1e9)
    with pytest.raises(TypeError):
        lock.acquire(timeout=None)
    assert lock.acquire(False, -1) is True  # -1 is "no timeout", allowed when not blocking
    lock.release()
    assert lock.acquire(timeout=-1) is True
    lock.release()


def test_acquire_with_timeout_waits_then_fails(any_lock):
    lock = any_lock()
    lock.acquire()
    start = time.monotonic()
    assert run_in_thread(lambda: lock.acquire(timeout=0.05)) is False
    assert time.monotonic() - start >= 0.05
    assert run_in_thread(lambda: lock.acquire(blocking=False)) is False
    assert run_in_thread(lambda: lock.acquire(timeout=0)) is False
    lock.release()


def test_blocked_acquire_proceeds_on_release(any_lock):
    lock = any_lock()
    lock.acquire()
    started = threading.Event()
    got = []

    def waiter():
        started.set()
        got.append(lock.acquire(timeout=10))
        lock.release()

    t = threading.Thread(target=waiter)
    t.start()
    assert started.wait(5)
    time.sleep(0.01)  # let the waiter block: the point of the test is a wait that ends on release
    assert not got
    lock.release()
    t.join(5)
    assert got == [True]


def test_weakref_and_pickle(any_lock):
    lock = any_lock()
    ref = weakref.ref(lock)
    assert ref() is lock
    with pytest.raises(TypeError):
        pickle.dumps(lock)
    del lock
    assert ref() is None


def test_repr_says_locked_or_unlocked(any_lock):
    lock = any_lock()
    assert repr(lock).startswith("<unlocked ")
    with lock:
        assert repr(lock).startswith("<locked ")


def test_at_fork_reinit_unlocks(any_lock):
    lock = any_lock()
    lock.acquire()
    lock._at_fork_reinit()
    assert lock.acquire(False) is True
    lock.release()


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_acquire_interrupted_by_signal_handler_exception(any_lock):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    lock = any_lock()
    holder_has_it, finish = threading.Event(), threading.Event()

    def hold():
        with lock:
            holder_has_it.set()
            finish.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert holder_has_it.wait(5)

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        start = time.monotonic()
        with pytest.raises(Interrupted):
            lock.acquire(timeout=10)
        assert time.monotonic() - start < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        finish.set()
        t.join(5)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_acquire_timeout_survives_a_quiet_signal(any_lock):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread")
    lock = any_lock()
    run_in_thread(lock.acquire)  # held by a finished thread: nobody will release it
    calls = []
    old = signal.signal(signal.SIGALRM, lambda *a: calls.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        start = time.monotonic()
        assert lock.acquire(timeout=0.2) is False
        elapsed = time.monotonic() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert calls == [1]
    assert 0.19 <= elapsed < 2


# -- Lock only ---------------------------------------------------------------------------


def test_lock_locked_and_aliases(make_lock):
    lock = make_lock()
    assert lock.locked() is False
    assert lock.acquire_lock() is True
    assert lock.locked_lock() is True and lock.locked() is True
    lock.release_lock()
    assert lock.locked() is False


def test_lock_is_not_reentrant(make_lock):
    lock = make_lock()
    lock.acquire()
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0.01) is False
    lock.release()


def test_lock_released_by_another_thread(make_lock):
    lock = make_lock()
    lock.acquire()
    run_in_thread(lock.release)
    assert lock.locked() is False
    assert lock.acquire(False) is True
    lock.release()


def test_lock_has_no_rlock_protocol(make_lock):
    lock = make_lock()
    for name in ("_is_owned", "_release_save", "_acquire_restore"):
        assert not hasattr(lock, name)  # threading.Condition picks its own fallbacks for a plain lock


# -- RLock only --------------------------------------------------------------------------


def test_rlock_reentrancy_and_count(make_rlock):
    lock = make_rlock()
    for _ in range(3):
        assert lock.acquire() is True
    assert lock._is_owned() is True
    check_recursion_count(lock, 3)
    assert "count=3" in repr(lock)
    assert run_in_thread(lambda: lock.acquire(False)) is False
    lock.release()
    lock.release()
    check_recursion_count(lock, 1)
    lock.release()
    assert lock._is_owned() is False
    assert "count=0" in repr(lock) and "owner=0" in repr(lock)


def test_rlock_release_by_non_owner_raises(make_rlock):
    lock = make_rlock()
    lock.acquire()
    with pytest.raises(RuntimeError):
        run_in_thread(lock.release)
    assert run_in_thread(lock._is_owned) is False
    run_in_thread(lambda: check_recursion_count(lock, 0))
    lock.release()


def test_rlock_release_save_and_acquire_restore(make_rlock):
    lock = make_rlock()
    lock.acquire()
    lock.acquire()
    state = lock._release_save()
    assert state[0] == 2 and state[1] == threading.get_ident()
    assert lock._is_owned() is False
    assert run_in_thread(lambda: (lock.acquire(False), lock.release())[0]) is True
    with pytest.raises(RuntimeError):
        lock._release_save()
    lock._acquire_restore(state)
    check_recursion_count(lock, 2)
    lock.release()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_rlock_accepts_and_ignores_arguments(make_rlock):
    if sys.version_info >= (3, 14):
        pytest.skip("3.14 deprecates arguments to RLock")
    make_rlock(1, x=2).acquire()


# -- what is built on them -----------------------------------------------------------------


def test_condition_wait_notify(any_lock):
    cond = threading.Condition(any_lock())
    items = []

    def produce():
        with cond:
            items.append(1)
            cond.notify()

    with cond:
        t = threading.Thread(target=produce)
        t.start()
        assert cond.wait_for(lambda: items, timeout=5)
    t.join(5)
    with cond:
        assert cond.wait(timeout=0.01) is False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_reinitialises_held_lock(any_lock):
    lock = any_lock()
    lock.acquire()
    pid = os.fork()
    if pid == 0:  # child: the lock held by the parent's thread must be usable after reinit
        code = 1
        try:
            lock._at_fork_reinit()
            with lock:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    lock.release()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
