"""Fork safety: no import ever runs in a profiler thread, and a fork near a flush leaves a child that exits.

An import in a background thread holds a module lock; a fork at that moment leaves that lock held
forever in the child (its owner did not survive the fork), and the child's exit flush, importing
the same module, waited on it (issue #15, item 3: 15-16 hangs in 20 runs of the fork loop below).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "exporter_agent"))
from agent_server import FakeAgent  # noqa: E402
from launching import run_launched
from pprof_helpers import profile_files

NO_IMPORT_SCRIPT = r"""
import _thread, sys, threading, time

imports = []

class RecordImportsOutsideMainThread:
    # Every import of a module not yet loaded asks the meta path: record who asks, and where.
    def find_spec(self, name, path=None, target=None):
        if _thread.get_ident() != MAIN:
            imports.append(name)
        return None

MAIN = _thread.get_ident()
sys.meta_path.insert(0, RecordImportsOutsideMainThread())

from profiler import Profiler

output, url = sys.argv[1], sys.argv[2]
prof = Profiler(service="no-imports", url=url, output_pprof=output, upload_interval=0.2,
                exception_enabled=True, heap_sample_size=4096)
prof.start()
# Both exporters: the file one, and the agent one (on only when there is no output prefix: add it).
from profiler_agent.exporter import AgentExporter
if not any(isinstance(e, AgentExporter) for e in prof.exporters):
    agent = AgentExporter(prof.config)
    prof.exporters.append(agent)
    prof._scheduler.exporters.append(agent)

lock = threading.Lock()
def work():
    data = []
    for i in range(3000):
        with lock:
            data.append([i] * 20)
        try:
            raise ValueError(i)
        except ValueError:
            pass
    return data

deadline = time.monotonic() + 1.2
while time.monotonic() < deadline:
    work()
prof.stop()
print("IMPORTS", sorted(set(imports)))
"""


def test_no_module_is_imported_by_a_profiler_thread(tmp_path):
    """Every collector, the file and the agent exporter, several flushes and uploads: every import the
    profiler needs was done by the thread that started it (it was the pprof encoder, protobuf, requests)."""
    agent = FakeAgent()
    try:
        script = tmp_path / "app.py"
        script.write_text(NO_IMPORT_SCRIPT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
        result = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "out" / "p"), agent.url],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert agent.wait_for(lambda a: len(a.uploads) >= 2, timeout=5), "the agent got %d uploads" % len(agent.uploads)
    finally:
        agent.close()
    assert len(profile_files(str(tmp_path / "out"))) >= 2, result.stderr[-2000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("IMPORTS")]
    assert line == ["IMPORTS []"], result.stdout + result.stderr[-2000:]


FORK_LOOP = r"""
import os, sys, time

def work():
    end = time.monotonic() + 0.02
    while time.monotonic() < end:
        pass

pids = []
for i in range(30):
    work()
    time.sleep(0.017 * (i % 7))  # forks spread over the flushes of the 0.5 s interval
    pid = os.fork()
    if pid == 0:
        work()
        if i % 2:
            sys.exit(0)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
print("all children exited")
"""


def test_children_forked_near_flushes_all_exit(tmp_path):
    """30 forks spread over flushes (half end with sys.exit, half with os._exit) under profiler-run with
    every collector: all children exit (4 runs in 5 left children blocked on the old code)."""
    script = tmp_path / "app.py"
    script.write_text(FORK_LOOP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
    env["DD_PROFILING_UPLOAD_INTERVAL"] = "0.5"
    out = tmp_path / "profiles"
    for attempt in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "profiler.run", "--output", str(out), "--enable", "exception", sys.executable, str(script)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path), start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            pytest.fail("forked children did not exit (run %d)" % attempt)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the children, if any is left
            except OSError:
                pass
            proc.wait()
        assert proc.returncode == 0 and "all children exited" in stdout, stderr[-3000:]
        assert "Traceback" not in stderr, stderr[-3000:]
