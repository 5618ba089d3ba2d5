"""The uploader thread under gevent.monkey.patch_all(): an OS thread whose uploads still arrive (issue #15, item 1)."""

import os
import subprocess
import sys

import pytest

from agent_server import FakeAgent

pytest.importorskip("gevent")

SCRIPT = """
from gevent import monkey
monkey.patch_all()
import gevent, sys, time
from profiler import Profiler

def handle():
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass
    gevent.sleep(0.1)

prof = Profiler(url=sys.argv[1], upload_interval=0.3)
prof.start()
gevent.joinall([gevent.spawn(handle) for _ in range(3)])
time.sleep(0.5)  # a periodic upload happens from the uploader thread meanwhile
prof.stop()
print("done")
"""


def test_uploads_arrive_from_a_gevent_program():
    agent = FakeAgent()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
        result = subprocess.run([sys.executable, "-c", SCRIPT, agent.url], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "done" in result.stdout, result.stderr
        assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
        assert agent.wait_for(lambda a: len(a.uploads) >= 2, 10), result.stderr
        names = set()
        for upload in agent.uploads:
            profile = upload.pprof()
            names |= {profile.string_table[f.name] for f in profile.function}
        assert "handle" in names
    finally:
        agent.close()
