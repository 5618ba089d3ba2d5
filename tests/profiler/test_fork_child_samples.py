"""A forked child's profile holds only what the child did, labelled with the child's own thread.

Two faults this guards against (issue #15): the lock and exception collectors kept the sums they had
gathered in the parent before the fork, so the child's first profile reported the parent's
pre-fork locks and exceptions a second time; and they labelled the child's main thread with
``threading.Thread.native_id``, which on CPython 3.10/3.11 still names the parent's thread in a
forked child.
"""

import os

from launching import run_launched
from pprof_helpers import decode, profile_files

SCRIPT = r"""
import os, sys, threading, time

def work(seconds):
    lock = threading.Lock()
    end = time.monotonic() + seconds
    junk = []
    while time.monotonic() < end:
        with lock:
            junk.append(bytearray(2000))
            if len(junk) > 500:
                junk.clear()
        try:
            raise ValueError("x")
        except ValueError:
            pass

def before_fork():
    work(0.4)

def after_fork():
    work(0.4)

before_fork()
pid = os.fork()
if pid == 0:
    after_fork()
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("child", pid, status, flush=True)
"""

TYPES = ("lock-acquire", "exception-samples", "alloc-samples", "cpu-samples")


def test_child_profile_has_only_the_childs_samples_with_its_native_id(tmp_path):
    out = tmp_path / "prof"
    env = {
        "DD_PROFILING_OUTPUT_PPROF": str(out),
        "DD_PROFILING_UPLOAD_INTERVAL": "30",
        "DD_PROFILING_LOCK_ENABLED": "true",
        "DD_PROFILING_MEMORY_ENABLED": "true",
        "DD_PROFILING_EXCEPTION_ENABLED": "true",
        "DD_PROFILING_CAPTURE_PCT": "100",
    }
    result = run_launched(["python", "{script}"], tmp_path, env, script=SCRIPT)
    assert result.returncode == 0, result.stderr
    child_pid = int(result.stdout.split()[1])
    files = profile_files(str(tmp_path))
    child_files = [f for f in files if os.path.basename(f).startswith("prof.%d." % child_pid)]
    assert child_files, files
    seen = {t: 0 for t in TYPES}
    for path in child_files:
        for stack, labels, values in decode(path).samples():
            names = {frame[1] for frame in stack}
            for t in TYPES:
                if not values.get(t):
                    continue
                seen[t] += values[t]
                assert "before_fork" not in names, (t, stack)
                assert labels.get("thread native id") == child_pid, (t, labels)
    assert all(seen.values()), seen
