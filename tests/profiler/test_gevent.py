"""Profiling programs that run under gevent's monkey-patching (issue #15, item 1).

Each program runs in a subprocess: patch_all() in the test process would patch pytest itself.
"""

import glob
import os
import subprocess
import sys
import textwrap

import pytest

from launching import run_launched
from pprof_helpers import decode

pytest.importorskip("gevent")

APP = """
import sys, time
from gevent import monkey
monkey.patch_all()
import gevent, threading
{start}

def sleeper():
    gevent.sleep(0.6)

def spinner():
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        sum(range(1000))

lock = threading.Lock()
rlock = threading.RLock()

def locker():
    for _ in range(3000):
        with lock:
            pass
        with rlock:
            with rlock:
                pass

gevent.joinall([gevent.spawn(sleeper), gevent.spawn(spinner), gevent.spawn(locker)], timeout=20)
print("threads", threading.active_count(), len(threading.enumerate()))
print("done")
"""

START_IN_CODE = """
from profiler import Profiler
prof = Profiler(output_pprof=sys.argv[1], upload_interval=3600, capture_pct=50)
prof.start()
print("started")
"""


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(extra)
    return env


def merged(files):
    """(stack, labels, values) of every sample of every file."""
    out = []
    for path in files:
        out.extend(decode(path).samples())
    return out


def check_profile(samples):
    # A greenlet asleep in gevent.sleep gets wall time of its own, labelled as a task.
    sleeping = [
        (labels, values)
        for stack, labels, values in samples
        if any(f[1] == "sleeper" for f in stack) and values.get("wall-time")
    ]
    assert sleeping, "no wall time for the sleeping greenlet"
    names = {labels.get("task name") for labels, _ in sleeping}
    assert all(isinstance(n, str) and n.startswith("Greenlet-") for n in names), names
    assert all(labels.get("task id") for labels, _ in sleeping)
    assert sum(v["wall-time"] for _, v in sleeping) > 0.2e9
    # The running greenlet's own samples carry its labels too.
    spinning = [labels for stack, labels, values in samples if any(f[1] == "spinner" for f in stack) and values.get("cpu-time")]
    assert spinning and any(str(l.get("task name", "")).startswith("Greenlet-") for l in spinning)
    # gevent's locks are profiled.
    locked = [stack for stack, _l, values in samples if values.get("lock-acquire") and any(f[1] == "locker" for f in stack)]
    assert locked, "no lock samples from gevent's locks"


def test_patch_all_then_profiler_start_completes_with_greenlet_stacks(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(APP.format(start=START_IN_CODE))
    prefix = str(tmp_path / "prof")
    result = subprocess.run(
        [sys.executable, str(script), prefix], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout and "done" in result.stdout
    assert "threads 1 1" in result.stdout  # the profiler's threads are not the program's
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    check_profile(merged(glob.glob(prefix + ".*.pprof")))


def test_profiler_run_then_patch_all(tmp_path):
    out = tmp_path / "out"
    result = run_launched(
        ["--output", str(out), sys.executable, "{script}"],
        tmp_path,
        env_extra={"DD_PROFILING_CAPTURE_PCT": "50"},
        script=APP.format(start=""),
    )
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout and "threads 1 1" in result.stdout
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    check_profile(merged(glob.glob(str(out / "*.pprof"))))


LOCK_SEMANTICS = """
from gevent import monkey
monkey.patch_all()
import gevent, threading, time
from profiler import Profiler
import gevent.thread
gevent_lock = gevent.thread.LockType
assert threading.Lock is gevent_lock
plain_errors = {}
def errors_of(make):
    out = []
    for call in (lambda l: l.acquire(False, 1), lambda l: l.acquire(True, -2), lambda l: l.release()):
        lock = make()
        try:
            call(lock)
            out.append(None)
        except Exception as e:
            out.append((type(e), str(e)))
    return out
plain = (errors_of(threading.Lock), errors_of(threading.RLock))
Profiler(capture_pct=100, output_pprof="/tmp/unused-%d" % id(plain), upload_interval=3600).start()
assert threading.Lock is not gevent_lock, threading.Lock
assert (errors_of(threading.Lock), errors_of(threading.RLock)) == plain

lock = threading.Lock()
assert lock.acquire() and lock.locked()
assert not lock.acquire(False)
began = time.monotonic()
assert not lock.acquire(True, 0.05) and time.monotonic() - began >= 0.04
lock.release()
with lock:
    assert lock.locked()
assert not lock.locked()

rlock = threading.RLock()
with rlock:
    with rlock:
        assert rlock._is_owned()
    assert rlock._is_owned()
assert not rlock._is_owned()
try:
    rlock.release()
except RuntimeError:
    pass
else:
    raise AssertionError("released an unowned RLock")

# Blocking is cooperative: a greenlet waiting for the lock lets the holder run (an OS lock would hang).
order = []
def holder():
    with lock:
        order.append("held")
        gevent.sleep(0.05)
        order.append("releasing")
def waiter():
    with lock:
        order.append("waiter got it")
g1 = gevent.spawn(holder); gevent.sleep(0); g2 = gevent.spawn(waiter)
gevent.joinall([g1, g2], timeout=5)
assert order == ["held", "releasing", "waiter got it"], order

cond = threading.Condition()
box = []
def producer():
    with cond:
        box.append(1)
        cond.notify()
with cond:
    gevent.spawn(producer)
    assert cond.wait(5) and box == [1]
print("ok")
"""


def test_gevent_lock_semantics_are_kept_when_profiled(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", LOCK_SEMANTICS], env=clean_env(), capture_output=True, text=True, timeout=30, cwd=str(tmp_path)
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr


PATCH_AFTER_START = """
from profiler import Profiler
prof = Profiler(capture_pct=100, output_pprof="/dev/null/unused", upload_interval=3600)
prof.start()
from gevent import monkey
monkey.patch_all()
import threading, gevent.thread
assert threading.Lock is not gevent.thread.LockType and type(threading.Lock()).__module__ == "profiler_lock.gevent_locks"
prof.stop(flush=False)
assert threading.Lock is gevent.thread.LockType, threading.Lock  # gevent's patch is left in place
print("ok")
"""


def test_patch_all_after_start_profiles_gevent_locks_and_stop_leaves_gevents_patch(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", PATCH_AFTER_START], env=clean_env(), capture_output=True, text=True, timeout=30, cwd=str(tmp_path)
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr
