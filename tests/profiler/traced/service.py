"""Run ``traced_app`` under gunicorn from the peers' environment (ddtrace 4.16, the OpenTelemetry
SDK, gunicorn: ``tests/exporter_agent/peers.py``) with this project's profiler from the source
tree, drive its endpoints with a bounded load, and read what it measured of itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TESTS, "exporter_agent"))

from peers import TestAgent, free_port, peers_bin  # noqa: E402

sys.path.insert(0, HERE)
from traced_app import COSTS_MS  # noqa: E402

__all__ = ["TestAgent", "Service", "peers_bin", "COSTS_MS"]


def project_path(tmp_dir: str) -> str:
    """A PYTHONPATH that gives another environment's interpreter this project as the test
    environment has it: its source directories (where the extensions are built in place) and a
    copy of its distributions' entry points, by which the profiler finds its collectors."""
    import importlib.metadata

    import profiler
    import profiler_agent
    import profiler_core
    import profiler_exception
    import profiler_lock
    import profiler_memory
    import profiler_stack

    sources = []
    for module in (profiler_core, profiler_stack, profiler_lock, profiler_memory, profiler_exception,
                   profiler_agent, profiler):
        src = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))
        assert os.path.basename(src) == "src", "the tests need the packages installed from the tree: %s" % src
        sources.append(src)
    points = os.path.join(tmp_dir, "entry-points")
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        text = dist.read_text("entry_points.txt")
        if name.startswith("pyprof-dd") and text:
            info = os.path.join(points, "%s-%s.dist-info" % (name.replace("-", "_"), dist.version))
            os.makedirs(info, exist_ok=True)
            with open(os.path.join(info, "entry_points.txt"), "w") as f:
                f.write(text)
    return os.pathsep.join(sources + [points, HERE])


class Service:
    """gunicorn (one gthread worker, 4 threads) serving ``traced_app`` under ``profiler-run``
    (or under ``ddtrace-run`` with ddtrace's profiler: ``under="ddtrace"``)."""

    def __init__(self, tmp_dir: str, env: dict, under: str = "profiler") -> None:
        bindir = peers_bin()
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        gunicorn = [os.path.join(bindir, "gunicorn"), "--bind", "127.0.0.1:%d" % self.port, "--workers", "1",
                    "--worker-class", "gthread", "--threads", "4", "--graceful-timeout", "20", "traced_app:application"]
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_")) and k != "PYTHONPATH"}
        if under == "profiler":
            cmd = [os.path.join(bindir, "python"), "-m", "profiler.run"] + gunicorn
            path = project_path(tmp_dir)
        else:
            cmd = [os.path.join(bindir, "ddtrace-run")] + gunicorn
            path = HERE
        self.log = open(os.path.join(tmp_dir, "service-%s.log" % under), "w+")
        self.proc = subprocess.Popen(cmd, env=dict(base, PYTHONPATH=path, **env), stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=tmp_dir)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the service did not start:\n" + self.output())
                time.sleep(0.05)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.read()

    def drive(self, rounds: int, clients: int = 4) -> "dict":
        """``clients`` threads each request every endpoint ``rounds`` times; requests by path."""
        errors = []

        def client():
            try:
                for _ in range(rounds):
                    for path in COSTS_MS:
                        self.get(path)
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        return {path: rounds * clients for path in COSTS_MS}

    def measured(self) -> "dict":
        """CPU nanoseconds each endpoint measured of itself."""
        return json.loads(self.get("/stats"))

    def stop(self) -> int:
        """SIGTERM to the master, as a process manager stops it; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]
