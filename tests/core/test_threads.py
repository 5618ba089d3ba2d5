"""The profiler's threads: OS threads the program's threading module does not list (issue #15, item 2)."""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from profiler_core import threads
from profiler_core.threads import Condition, Event, ProfilerThread, PROFILER_THREADS, start_thread


def test_a_profiler_thread_is_not_listed_and_is_joinable():
    started = Event()
    release = Event()
    before = set(threading.enumerate())

    def target():
        started.set()
        release.wait()

    t = start_thread(target, "profiler-test")
    assert started.wait(5)
    assert t.is_alive() and t.ident in PROFILER_THREADS
    # Threads other tests left behind may end meanwhile; none may appear.
    listed = threading.enumerate()
    assert set(listed) <= before and threading.active_count() == len(listed)
    assert t.ident not in {thread.ident for thread in listed}
    assert "profiler-test" not in {thread.name for thread in listed}
    assert not t.join(0.01)
    release.set()
    assert t.join(5) and not t.is_alive()
    assert t.ident not in PROFILER_THREADS


def test_logging_from_a_profiler_thread_leaves_no_dummy_thread():
    from profiler_core._log import get_logger

    log = get_logger("profiler_core.test")
    done = Event()

    def target():
        log.warning("from a profiler thread")
        done.set()

    before = threading.active_count()
    t = start_thread(target, "profiler-logging")
    assert done.wait(5)
    assert threading.active_count() == before
    t.join(5)


def test_an_exception_in_the_target_prints_nothing(capfd):
    t = start_thread(lambda: 1 / 0, "profiler-failing")
    assert t.join(5)
    assert capfd.readouterr().err == ""


def test_condition_wait_times_out_and_is_notified():
    cond = Condition()
    with cond:
        assert not cond.wait(0.01)
    woke = []

    def waiter():
        with cond:
            woke.append(cond.wait(10))

    t = threading.Thread(target=waiter)
    t.start()
    while True:
        with cond:
            if cond._waiters:
                cond.notify_all()
                break
    t.join(5)
    assert woke == [True]


def test_started_twice_is_an_error():
    t = ProfilerThread(lambda: None, "profiler-once")
    t.start()
    with pytest.raises(RuntimeError):
        t.start()
    t.join(5)


def run(code, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_starting_the_profiler_leaves_the_thread_list_unchanged():
    result = run(
        """
        import threading
        from profiler import Profiler
        before = (threading.active_count(), [t.name for t in threading.enumerate()])
        Profiler(upload_interval=0.2, output_pprof="/dev/null/x").start()
        import time; time.sleep(0.5)  # a flush (failing to write: logged) ran in the scheduler meanwhile
        after = (threading.active_count(), [t.name for t in threading.enumerate()])
        assert before == after, (before, after)
        print("ok")
        """
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_a_program_joining_every_thread_exits():
    # Joins every thread but its own, and waits for active_count() == 1, as some programs do at exit.
    result = run(
        """
        import threading, time
        from profiler import Profiler
        Profiler().start()
        for t in threading.enumerate():
            if t is not threading.current_thread():
                t.join()
        deadline = time.monotonic() + 5
        while threading.active_count() != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("count", threading.active_count())
        """,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "count 1" in result.stdout
    assert "Exception ignored" not in result.stderr
