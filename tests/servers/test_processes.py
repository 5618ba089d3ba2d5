"""Programs that are not servers: multiprocessing pools, gevent, a program that joins every thread,
and processes killed by SIGTERM. Each runs under profiler-run; every process that ran Python code
writes its profile, with the work function in it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from hang_report import hang_report, with_faulthandler
from harness import clean_env, kill_group, profiles_by_pid
from pprof_helpers import decode

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = "square_slowly"

POOL_SCRIPT = r"""
import multiprocessing as mp, os, sys, time
from concurrent.futures import ProcessPoolExecutor

def square_slowly(x):
    end = time.monotonic() + 0.06
    while time.monotonic() < end:
        pass
    return x * x, os.getpid()

if __name__ == "__main__":
    method, kind = sys.argv[1], sys.argv[2]
    ctx = mp.get_context(method)
    if kind == "pool-with":  # Pool.__exit__ terminates the workers (SIGTERM)
        with ctx.Pool(2) as pool:
            results = pool.map(square_slowly, range(16), chunksize=1)
    elif kind == "pool-close":  # the workers end by themselves, with os._exit
        pool = ctx.Pool(2)
        results = pool.map(square_slowly, range(16), chunksize=1)
        pool.close()
        pool.join()
    else:
        with ProcessPoolExecutor(2, mp_context=ctx) as executor:
            results = list(executor.map(square_slowly, range(16)))
    assert [r for r, _ in results] == [x * x for x in range(16)]
    print("WORKERS", " ".join(str(p) for _, p in results))
"""


def launch(tmp_path, script, *args, env_extra=None, timeout=60):
    path = tmp_path / "app.py"
    path.write_text(script)
    out = tmp_path / "profiles"
    command = [sys.executable, "-m", "profiler.run", "--output", str(out), sys.executable, str(path), *args]
    proc = subprocess.Popen(command, env=with_faulthandler(clean_env(env_extra)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(tmp_path), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        report = hang_report(proc.pid)
        kill_group(proc)
        stdout, stderr = proc.communicate()
        pytest.fail("no exit after %s s\n%s\nstdout:\n%s\nstderr:\n%s" % (timeout, report, stdout[-3000:], stderr[-8000:]))
    finally:
        kill_group(proc)
    return proc.returncode, stdout, stderr, out


def function_time(paths, name):
    return sum(decode(p).by_function("wall-time").get(name, 0) for p in paths)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
@pytest.mark.parametrize("kind", ["pool-with", "pool-close", "executor"])
def test_multiprocessing_workers_write_their_profiles(tmp_path, method, kind):
    """Every worker's profile has the work function (fork and forkserver workers end with os._exit:
    none was written before; the workers Pool.__exit__ terminates die by SIGTERM, their last period
    written first). The pool's exit stays prompt: a SIGTERM that came just before a worker's blocking
    wait once left it waiting forever (about once in 30 pools on 3.12, before sigterm_watch)."""
    returncode, stdout, stderr, out = launch(tmp_path, POOL_SCRIPT, method, kind)
    assert returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    tasks = {}
    for pid in stdout.split("WORKERS", 1)[1].split():
        tasks[int(pid)] = tasks.get(int(pid), 0) + 1
    profiles = profiles_by_pid(out)
    for pid, count in tasks.items():
        assert pid in profiles, "worker %d: %s\n%s" % (pid, sorted(profiles), stderr[-2000:])
        if count >= 3:  # 180 ms of work at least: sampled (a task or two may fall between samples,
            # and the first samples of a fresh process can leave a frame unnamed)
            assert function_time(profiles[pid], WORK) > 0, "worker %d: %s\n%s" % (pid, tasks, stderr[-2000:])


SIGTERM_SCRIPT = r"""
import os, sys, threading, time

def busy_until_killed():
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        sum(range(1000))

if len(sys.argv) > 1:
    threading.Thread(target=busy_until_killed, daemon=True).start()  # a second thread at work
    time.sleep(0.2)
busy_until_killed()
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_a_process_killed_by_sigterm_writes_its_last_profile(tmp_path, threads):
    """`kill PID` on a program with no SIGTERM handler: it dies by SIGTERM as before (same status
    for its parent), promptly, and its last period is written (nothing was, before)."""
    path = tmp_path / "app.py"
    path.write_text(SIGTERM_SCRIPT)
    out = tmp_path / "profiles"
    args = ["x"] if threads == 2 else []
    proc = subprocess.Popen([sys.executable, "-m", "profiler.run", "--output", str(out), sys.executable, str(path), *args],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.3)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(20)
        elapsed = time.monotonic() - began
        stderr = proc.stderr.read()
    finally:
        kill_group(proc)
    assert returncode == -signal.SIGTERM, stderr[-3000:]
    assert elapsed < 10, elapsed
    assert "Traceback" not in stderr, stderr[-3000:]
    profiles = profiles_by_pid(out)
    assert function_time(profiles.get(proc.pid, []), "busy_until_killed") > 0, (sorted(profiles), stderr[-2000:])


EXITING_SCRIPT = r"""
import atexit, os, signal, sys, time

def square_slowly():
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass

def signalled_while_exiting():
    os.kill(os.getpid(), signal.SIGTERM)  # as Pool.terminate() does to a worker on its way out
    time.sleep(0.2)

square_slowly()
atexit.register(signalled_while_exiting)  # runs before the profiler's exit flush (last in, first out)
"""


def test_a_sigterm_while_the_interpreter_exits_keeps_the_last_profile(tmp_path):
    """SIGTERM during the interpreter's exit: from 3.12 no thread can be started then, and the
    handler's flush thread could not, so the process died with nothing written (a multiprocessing
    worker Pool.terminate() signalled as it ended: 1 pool in 8 on 3.12). The exit's own flush runs,
    then the process dies by SIGTERM as it would have."""
    returncode, stdout, stderr, out = launch(tmp_path, EXITING_SCRIPT)
    assert returncode == -signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    profiles = profiles_by_pid(out)
    assert len(profiles) == 1, (sorted(profiles), stderr[-2000:])
    (paths,) = profiles.values()
    assert function_time(paths, "square_slowly") > 0


MISSED_SIGNAL_SCRIPT = r"""
import os, signal, sys, threading, time

def work():
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass

work()
if sys.argv[1] == "missed":
    # The race, made certain: SIGTERM handled on another thread while the main thread waits on a lock
    # (no interruption there), as when it comes just before the wait begins.
    def handled_here():
        time.sleep(0.3)  # the main thread waits by then
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=handled_here).start()
    print("ready", flush=True)
    threading.Event().wait()
else:
    print("ready", flush=True)
    os.system("sleep 30")  # C's system() waits again when interrupted: Python cannot run meanwhile
"""


@pytest.mark.parametrize("case", ["missed", "stuck-in-c"])
def test_sigterm_ends_a_main_thread_that_cannot_run_the_handler(tmp_path, case):
    """A SIGTERM the main thread's blocking wait missed still ends the process (it waited forever,
    before sigterm_watch), its last profile written: the main thread is woken to run the handler, and
    dies by SIGTERM; one stuck in C code is flushed for, and ends by SIGKILL."""
    path = tmp_path / "app.py"
    path.write_text(MISSED_SIGNAL_SCRIPT)
    out = tmp_path / "profiles"
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr_file:  # a file: `sleep` (left running) keeps a pipe open
        proc = subprocess.Popen([sys.executable, "-m", "profiler.run", "--output", str(out), sys.executable, str(path),
                                 case], env=clean_env(), stdout=subprocess.PIPE, stderr=stderr_file, text=True,
                                start_new_session=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        began = time.monotonic()
        if case == "stuck-in-c":
            time.sleep(0.2)  # into system(): nothing to wait for from outside
            proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(20)
        elapsed = time.monotonic() - began
    finally:
        kill_group(proc)
    stderr = stderr_path.read_text(errors="replace")
    assert elapsed < 10, elapsed
    assert returncode == (-signal.SIGTERM if case == "missed" else -signal.SIGKILL), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    profiles = profiles_by_pid(out)
    assert function_time(profiles.get(proc.pid, []), "work") > 0, (sorted(profiles), stderr[-2000:])


OWN_HANDLER_SCRIPT = r"""
import os, signal, sys, time
if sys.argv[1] == "before":
    pass  # the handler is set by the sitecustomize below, before the profiler starts
else:
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(7))
print(signal.getsignal(signal.SIGTERM).__name__ if callable(signal.getsignal(signal.SIGTERM)) else signal.getsignal(signal.SIGTERM), flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
sys.exit(1)
"""


def test_a_sigterm_handler_the_program_installs_wins(tmp_path):
    returncode, stdout, stderr, out = launch(tmp_path, OWN_HANDLER_SCRIPT, "after")
    assert returncode == 7, stderr[-3000:]
    assert stdout.strip() == "<lambda>"


def test_an_ignored_sigterm_stays_ignored(tmp_path):
    script = "import signal\nprint(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)\n"
    path = tmp_path / "app.py"
    path.write_text(script)
    code = "import signal, os, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); os.execv(sys.executable, [sys.executable, '-m', 'profiler.run', '--output', %r, sys.executable, %r])" % (str(tmp_path / "out"), str(path))
    result = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr[-2000:]


JOIN_ALL_SCRIPT = r"""
import threading, time

def square_slowly():  # the work function
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass

workers = [threading.Thread(target=square_slowly) for _ in range(3)]
for t in workers:
    t.start()
for t in threading.enumerate():  # joins every thread but itself, the profiler's included if listed
    if t is not threading.current_thread():
        t.join()
print("joined")
"""


def test_a_program_that_joins_every_thread_ends(tmp_path):
    """Joining every thread threading lists must not hang: the profiler's threads are not listed."""
    returncode, stdout, stderr, out = launch(tmp_path, JOIN_ALL_SCRIPT, timeout=20)
    assert returncode == 0 and "joined" in stdout, stderr[-3000:]
    assert any(function_time(paths, WORK) > 0 for paths in profiles_by_pid(out).values()), stderr[-2000:]


GEVENT_SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import gevent, time

START = time.monotonic()

def square_slowly(n):
    # The greenlets take turns (gevent.sleep(0)); greenlet n works until 0.4 s * (n + 1): 2 s of work
    # in all, sampled on a loaded machine too (each alone would end with the first, 0.4 s in)
    end = START + 0.4 * (n + 1)
    while time.monotonic() < end:
        gevent.sleep(0)
    return n * n

jobs = [gevent.spawn(square_slowly, i) for i in range(5)]
gevent.joinall(jobs, timeout=10)
print("results", [j.value for j in jobs])
"""


def test_a_plain_gevent_script(tmp_path):
    returncode, stdout, stderr, out = launch(tmp_path, GEVENT_SCRIPT, timeout=30)
    assert returncode == 0 and "results [0, 1, 4, 9, 16]" in stdout, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    profiles = profiles_by_pid(out)
    assert any(function_time(paths, WORK) > 0 for paths in profiles.values()), (sorted(profiles), stderr[-2000:])
