"""uWSGI (from PyPI) with a master and 2 workers, the usual configurations.

uWSGI forks its workers in C, so Python's at-fork handlers do not run there unless it is told to
(``--py-call-uwsgi-fork-hooks``, which profiler-run sets through uWSGI's environment); a profiler
started by the application before the fork restarts in each worker from uWSGI's post-fork hook.
uWSGI 2.0 reloads on SIGTERM unless ``--die-on-term`` is given (its own behaviour): the tests give it.
"""

import os
import signal
import subprocess
import sysconfig

import pytest

from harness import (EXIT_WITHIN, alive, clean_env, descendants, free_port, get, kill_group, profiles_by_pid,
                     run_server, tool, wait_for_port)
from waiting import wait_until


def _uwsgi_embeds_this_python():
    """Whether the uwsgi binary pip built links the libpython of the interpreter running the tests.

    pip builds uWSGI against whatever libpython the linker finds: for a static build of CPython
    (scripts/build-python.sh) on a machine that also has a shared one of the same version
    elsewhere (pyenv), that other one, and such a uWSGI crashes loading the first C extension.
    """
    try:
        out = subprocess.run(["ldd", tool("uwsgi")], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return True, ""
    linked = [line.split("=>")[-1].split("(")[0].strip() for line in out.splitlines() if "libpython" in line]
    if not linked:
        return True, ""  # a static libpython inside uwsgi: its own build's
    libdir = os.path.realpath(sysconfig.get_config_var("LIBDIR") or "")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return False, "uwsgi links %s, but this interpreter is a static build" % linked
    ok = all(os.path.realpath(path).startswith(libdir + os.sep) for path in linked)
    return ok, "" if ok else "uwsgi links %s, not this interpreter's (%s)" % (linked, libdir)


_MATCHES, _WHY = _uwsgi_embeds_this_python()
pytestmark = pytest.mark.skipif(not _MATCHES, reason=_WHY or "uwsgi does not embed this interpreter")


def check_uwsgi(run):
    """The common checks, then: the workers' profiles. uWSGI's limit: a worker stopped while a
    request is in progress there (as it is for a moment after the client has the answer) exits
    without running Python's atexit (uwsgi_python_atexit skips busy workers; ddtrace loses that
    profile too), so one worker's profile at least; the test below waits for idle workers."""
    run.check(exempt=run.lived, handler_in_every_answering_worker=False)
    assert any(run.handler_time(pid) > 0 for pid in run.answered_by), (sorted(run.profiles), run.stderr[-3000:])


def uwsgi(port, *args, app="apps.py"):
    return [tool("uwsgi"), "--http-socket", "127.0.0.1:%d" % port, "--master", "--processes", "2",
            "--die-on-term", "--need-app", "--wsgi-file", app, "--disable-logging", *args]


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked", "lazy-apps"])
def test_uwsgi_under_profiler_run(tmp_path, lazy):
    port = free_port()
    args = ["--enable-threads"] + (["--lazy-apps"] if lazy else [])
    run = run_server(tmp_path, uwsgi(port, *args, app=_app(tmp_path, "apps")), port)
    check_uwsgi(run)


@pytest.mark.parametrize("lazy", [False, True], ids=["preforked", "lazy-apps"])
def test_uwsgi_with_profiler_auto_in_the_app(tmp_path, lazy):
    port = free_port()
    args = ["--enable-threads"] + (["--lazy-apps"] if lazy else [])
    run = run_server(tmp_path, uwsgi(port, *args, app=_app(tmp_path, "apps_auto")), port, launched=False)
    check_uwsgi(run)


def test_uwsgi_without_threads_says_so_and_exits(tmp_path):
    """Without --enable-threads the profiler's threads run only while the app runs Python: one line
    at start-up says so (once, in the master that loaded the app), exits are as prompt as ever."""
    port = free_port()
    run = run_server(tmp_path, uwsgi(port, app=_app(tmp_path, "apps_auto")), port, launched=False)
    check_uwsgi(run)
    lines = [l for l in run.stderr.splitlines() if "--enable-threads" in l and "profiler" in l]
    assert len(lines) == 1, run.stderr[-3000:]


def _worker_states(stats_port):
    """The workers' states ("idle", "busy", ...) from uWSGI's stats server."""
    import json
    import socket

    with socket.create_connection(("127.0.0.1", stats_port), timeout=5) as conn:
        data = b"".join(iter(lambda: conn.recv(65536), b""))
    return [worker.get("status") for worker in json.loads(data.decode()).get("workers", [])]


def _app(tmp_path, module):
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, module + ".py")


def test_a_preforking_master_without_fork_hooks_runs_no_profiler_thread(tmp_path):
    """uWSGI forks its workers from C: were a profiler thread holding the GIL at that moment, the
    worker would wait for it forever (it has no such thread). Such a master runs none; its workers
    each start their own profiler, and every worker a later fork makes (a respawn) does too."""
    port = free_port()
    out = tmp_path / "profiles"
    env = clean_env({"DD_PROFILING_OUTPUT_PPROF": str(out / "profile")})
    stats_port = free_port()
    command = uwsgi(port, "--enable-threads", "--stats", "127.0.0.1:%d" % stats_port, app=_app(tmp_path, "apps_auto"))
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=str(tmp_path), start_new_session=True)
    try:
        assert wait_for_port(port, proc), "the server did not listen"
        answered = [int(get(port)[1]) for _ in range(10)]
        first = descendants(proc.pid)
        os.kill(first[0], signal.SIGKILL)  # the master forks a new worker in its place
        assert wait_until(lambda: len(set(descendants(proc.pid)) - set(first)) == 1, EXIT_WITHIN)
        respawned = (set(descendants(proc.pid)) - set(first)).pop()
        for _ in range(200):
            answered.append(int(get(port)[1]))
            if answered.count(respawned) >= 10:
                break
        assert answered.count(respawned) >= 10, answered
        workers = descendants(proc.pid)
        # uWSGI skips a worker's exit hooks (Python's atexit) when a request is in progress there,
        # which it is for a moment after the client has its answer: wait until both are idle.
        assert wait_until(lambda: _worker_states(stats_port) == ["idle", "idle"], EXIT_WITHIN)
        assert len(os.listdir("/proc/%d/task" % proc.pid)) == 1, "threads in the master"
        for pid in workers:
            assert len(os.listdir("/proc/%d/task" % pid)) > 1, "no profiler thread in worker %d" % pid
        proc.send_signal(signal.SIGTERM)
        proc.wait(EXIT_WITHIN)
        assert wait_until(lambda: not any(alive(p) for p in workers), EXIT_WITHIN)
    finally:
        kill_group(proc)
    stderr = proc.stderr.read().decode(errors="replace")
    assert "Traceback" not in stderr, stderr[-3000:]
    profiled = set(profiles_by_pid(out))
    assert proc.pid not in profiled
    # the SIGKILLed worker wrote nothing; the other two did (at exit), the respawned one included
    assert set(workers) <= profiled, (sorted(workers), sorted(profiled), stderr[-3000:])
