"""Independent check: Go's pprof (Debian's golang-go) reads our output with the right totals."""

import shutil
import subprocess

import pytest

from profiler_core.events import Frame
from profiler_core.pprof import encode_profile, gzip_bytes
from profiler_core.recorder import Recorder

GO = shutil.which("go")
pytestmark = pytest.mark.skipif(GO is None, reason="go toolchain not installed (apt-get install golang-go)")

MAIN = Frame("/app/main.py", "main", 10)
HANDLE = Frame("/app/web.py", "Handler.handle", 20, "Handler")
QUERY = Frame("/app/db.py", "query", 30)


def pprof(args, path):
    result = subprocess.run([GO, "tool", "pprof"] + args + [path], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory):
    r = Recorder(max_frames=3)
    r.push((QUERY, HANDLE, MAIN), (("thread name", "worker"), ("thread id", 7)), {"cpu-time": 750_000_000, "cpu-samples": 75})
    r.push((HANDLE, MAIN), (("thread name", "MainThread"),), {"cpu-time": 250_000_000, "cpu-samples": 25})
    deep = tuple(Frame("/app/deep.py", "f%d" % i, i + 1) for i in range(10))
    r.push(deep, (), {"wall-time": 5_000_000})
    path = tmp_path_factory.mktemp("go") / "p.pprof"
    path.write_bytes(gzip_bytes(encode_profile(r.flush(), period=("cpu-time", 10_000_000))))  # as files are written
    return str(path)


def test_go_pprof_top_totals(profile_path):
    out = pprof(["-top", "-sample_index=cpu-time"], profile_path)
    assert "Type: cpu-time" in out
    assert "Total samples = 1000ms" in out
    rows = {line.split()[-1]: line.split() for line in out.splitlines() if line.strip().endswith(("query", "Handler.handle", "main"))}
    assert rows["query"][:2] == ["750ms", "75.00%"]
    assert rows["Handler.handle"][0] == "250ms" and rows["Handler.handle"][3] == "1000ms"
    assert rows["main"][0] == "0" and rows["main"][3] == "1000ms"


def test_go_pprof_raw_labels_and_omitted_frames(profile_path):
    out = pprof(["-raw"], profile_path)
    assert "thread name:[worker]" in out
    assert "thread id:[7]" in out
    assert "class name:[Handler]" in out
    assert "<8 frames omitted>" in pprof(["-top", "-sample_index=wall-time"], profile_path)


def test_go_pprof_opens_on_cpu_time_by_default(tmp_path):
    r = Recorder()
    r.push((QUERY, MAIN), (), {"cpu-time": 40_000_000, "wall-time": 90_000_000})
    r.push((HANDLE, MAIN), (), {"heap-live-samples": 0, "heap-space": 0})
    path = tmp_path / "d.pprof"
    path.write_bytes(gzip_bytes(encode_profile(r.flush())))
    out = pprof(["-top"], str(path))  # no -sample_index: the profile's default_sample_type decides
    assert "Total samples = 40ms" in out or "of 40ms total" in out, out
