"""``gunicorn -k gevent -w 2`` with ``import profiler.auto`` in the app: every request served, and each
worker's profile shows the handler (issue #15, item 1). The server binds 127.0.0.1 only and is always stopped."""

import concurrent.futures
import glob
import http.client
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from pprof_helpers import decode

pytest.importorskip("gevent")
pytest.importorskip("gunicorn")

REQUESTS = 50

APP = '''
import os
import profiler.auto  # noqa: F401 (starts profiling, after gunicorn's gevent worker patched everything)
import gevent


def handle_request_work():
    gevent.sleep(0.2)  # waits long enough to be sampled even at a stretched interval on a busy machine
    return sum(range(20000))


def app(environ, start_response):
    handle_request_work()
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def handler_frames_in(files):
    for path in files:
        for stack, _labels, values in decode(path).samples():
            if values.get("wall-time") and any(f[1] == "handle_request_work" for f in stack):
                return True
    return False


def test_gunicorn_gevent_workers_serve_every_request_and_write_profiles(tmp_path):
    (tmp_path / "gapp.py").write_text(APP)
    prefix = str(tmp_path / "prof")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(DD_PROFILING_OUTPUT_PPROF=prefix, DD_PROFILING_UPLOAD_INTERVAL="1", PYTHONPATH=str(tmp_path))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2", "-b", "127.0.0.1:0", "--graceful-timeout", "5", "gapp:app"],
        cwd=str(tmp_path),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    log = []
    try:
        port = None
        booted = 0
        deadline = time.monotonic() + 30
        while (port is None or booted < 2) and time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line:
                break
            log.append(line)
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
            if "Booting worker with pid" in line:
                booted += 1
        assert port is not None and booted == 2, "".join(log)
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda _: get(port), range(REQUESTS)))
        assert [status for status, _ in results] == [200] * REQUESTS
        served_by = {int(body) for _, body in results}
        # Each worker that served writes profiles (every second) with the handler's frames.
        # Both workers profile, whether or not they served.
        deadline = time.monotonic() + 30
        missing, workers = served_by, set()
        while (missing or len(workers) < 2) and time.monotonic() < deadline:
            time.sleep(0.2)
            missing = {pid for pid in served_by if not handler_frames_in(glob.glob("%s.%d.*.pprof" % (prefix, pid)))}
            workers = {int(p.rsplit(".", 3)[-3]) for p in glob.glob(prefix + ".*.pprof")}
        assert not missing, (missing, os.listdir(str(tmp_path)))
        assert len(workers) == 2, workers
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        except ProcessLookupError:
            pass
        rest = server.stderr.read()
        server.stderr.close()
    text = "".join(log) + rest
    assert "Exception ignored" not in text and "Traceback" not in text, text
