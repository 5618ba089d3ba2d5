"""Running a real server under ``profiler-run`` on 127.0.0.1: start, bounded load, SIGTERM, checks.

``run_server`` starts the command in its own session (so everything it forks can be killed at the
end whatever happens), waits for the port, sends ``requests`` requests from a few client threads,
notes the server's processes, sends SIGTERM and returns what a test checks: the exit status and
time, stderr, the pids that answered, every pid that lived, and the profiles by pid.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from hang_report import hang_report, with_faulthandler
from pprof_helpers import decode, profile_files
from waiting import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
#: Seconds from SIGTERM to the exit of every process of the server: "a few", with room for a busy machine.
EXIT_WITHIN = 10.0
HANDLER = "handle_request"
#: Requests (about 16 ms each) a worker answers before its profile must show the handler.
MIN_ANSWERS_SAMPLED = 10  # a fresh worker's first samples may name no frame yet (issue #18): 160 ms of handler CPU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    """The console script ``name`` of the test environment."""
    return os.path.join(BIN, name)


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "UWSGI_")) and k != "PYTHONPATH"}
    env["PYTHONPATH"] = HERE  # the apps
    env.update(extra or {})
    return env


def stat_fields(pid: "int | str"):
    """The fields of ``/proc/PID/stat`` after the command name (state, ppid, ...), or None when gone."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(root: int):
    """Pids of ``root``'s live descendants, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = stat_fields(entry)
        if fields is not None and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def cpu_seconds(pids) -> float:
    """User and system CPU time the processes ``pids`` have used so far (those still there)."""
    ticks = 0
    for pid in pids:
        fields = stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def get(port: int, path: str = "/") -> "tuple[int, str]":
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def wait_for_port(port: int, proc, timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class ServerRun:
    """What happened to one server: see the module docstring."""

    def __init__(self, returncode, exit_seconds, stderr, answered_by, lived, profiles, leftover):
        # answered_by: requests answered, by pid
        self.returncode = returncode
        self.exit_seconds = exit_seconds
        self.stderr = stderr
        self.answered_by = answered_by
        self.lived = lived
        self.profiles = profiles
        self.leftover = leftover

    def handler_time(self, pid: int) -> int:
        """Wall time of the handler in ``pid``'s profiles."""
        return sum(decode(path).by_function("wall-time").get(HANDLER, 0) for path in self.profiles.get(pid, []))

    def check(self, expect_workers: int = 1, handler_in_every_answering_worker: bool = True, exempt=()):
        """The matrix's promises: a prompt exit, no traceback, nothing left, a profile per process,
        the handler in each worker that answered."""
        tail = self.stderr[-12000:]
        assert self.exit_seconds < EXIT_WITHIN, "exit took %.1f s\n%s" % (self.exit_seconds, tail)
        assert not self.leftover, "processes left behind: %s\n%s" % (self.leftover, tail)
        assert "Traceback" not in self.stderr, tail
        assert len(self.answered_by) >= expect_workers, (self.answered_by, tail)
        missing = sorted(set(self.lived) - set(self.profiles) - set(exempt))
        assert not missing, "no profile from %s (profiles: %s, answers: %s)\n%s" % (
            missing, sorted(self.profiles), self.answered_by, tail)
        if handler_in_every_answering_worker:
            # A worker that answered a request or two (--max-requests) ran the handler for a few
            # milliseconds, less than a sampling interval: it may have no sample of it.
            for pid in [p for p, count in self.answered_by.items() if count >= MIN_ANSWERS_SAMPLED]:
                assert self.handler_time(pid) > 0, "no %s in the profile of %d\n%s" % (HANDLER, pid, tail)


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the process group ``proc`` leads (started with ``start_new_session``) and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


def profiles_by_pid(out) -> dict:
    """Profile files under ``out`` by the pid in their names (``prefix.<pid>.<seq>.pprof``)."""
    found: dict = {}
    for path in profile_files(str(out)):
        found.setdefault(int(os.path.basename(path).split(".")[1]), []).append(path)
    return found


def run_server(tmp_path, command, port, requests=40, clients=4, env_extra=None, launcher_args=(),
               ready_before_signal=None, signum=signal.SIGTERM, launched=True) -> ServerRun:
    """Run ``command`` under profiler-run (see the module docstring), or as it is when not
    ``launched`` (the application starts the profiler: profiles go to the same place).
    ``ready_before_signal(pids)``, given the server's live processes after the load, tells whether
    they are all ready for the signal (it is sent when they are, or after 30 s)."""
    out = tmp_path / "profiles"
    env = clean_env(env_extra)
    launcher = [sys.executable, "-m", "profiler.run", "--output", str(out), *launcher_args]
    if not launched:
        launcher = []
        env["DD_PROFILING_OUTPUT_PPROF"] = str(out / "profile")
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr_file:
        proc = subprocess.Popen(launcher + list(command), env=with_faulthandler(env), stdout=subprocess.DEVNULL, stderr=stderr_file,
                                cwd=str(tmp_path), start_new_session=True)
    lived = set()
    report = ""
    try:
        assert wait_for_port(port, proc), "the server did not listen\n" + stderr_path.read_text()[-4000:]
        with ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(lambda _: get(port), range(requests)))
        assert all(status == 200 for status, _ in answers), answers
        answered_by = {}
        for _, body in answers:
            answered_by[int(body)] = answered_by.get(int(body), 0) + 1
        if ready_before_signal is not None:
            assert wait_until(lambda: ready_before_signal([proc.pid, *descendants(proc.pid)]), timeout=30), (
                "the server's processes were not ready for the signal\n" + stderr_path.read_text()[-4000:])
        lived = {proc.pid, *descendants(proc.pid)}
        began = time.monotonic()
        proc.send_signal(signum)
        try:
            returncode = proc.wait(EXIT_WITHIN + 20)
        except subprocess.TimeoutExpired:
            returncode = None
        wait_until(lambda: not any(alive(p) for p in lived), timeout=EXIT_WITHIN + 5)
        exit_seconds = time.monotonic() - began
        leftover = sorted(p for p in lived if alive(p))
        if leftover:
            report = hang_report(([proc.pid] if returncode is None else []) + leftover)
    finally:
        kill_group(proc)
    profiles = profiles_by_pid(out)
    # A process that forked and exec'd nothing else but lived only an instant (e.g. a helper) may
    # have nothing to record; every process counted here ran Python for the whole test.
    stderr = stderr_path.read_text(errors="replace")
    return ServerRun(returncode, exit_seconds, stderr + ("\n" + report if report else ""), answered_by,
                     sorted(lived), profiles, leftover)
