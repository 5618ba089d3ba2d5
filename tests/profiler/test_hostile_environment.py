"""A tiny program under profiler-run with every documented variable set to hostile values: it runs
to its end, stderr has no traceback, and every value the configuration refuses is named there."""

import logging
import random
import socket
import sys

import pytest

from launching import run_launched
from profiler_core.config import VARIABLES, load_config

SCRIPT = """
import threading, time
lock = threading.Lock()
def work():
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        with lock:
            [0] * 100
        try:
            {}["x"]
        except KeyError:
            pass
work()
print("program: done")
"""

ISSUE_VALUES = {
    "DD_PROFILING_UPLOAD_INTERVAL": "1e10",
    "DD_PROFILING_API_TIMEOUT": "inf",
    "DD_PROFILING_EXCEPTION_ENABLED": "true",
    "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL": "1e30",
    "DD_TRACE_AGENT_URL": "http://[::1]:99999",
    "DD_AGENT_HOST": "garbage host",
    "DD_PROFILING_UPLOAD_COMPRESSION": "brotli",
    "DD_PROFILING_AGENTLESS": "true",
    "DD_PROFILING_HEAP_SAMPLE_SIZE": "99999999999999999999",
    "DD_SITE": "evil.example@datadoghq.com",
    "DD_PROFILING_MAX_FRAMES": "-5",
    "DD_PROFILING_API_TIMEOUT_MS": "nan",
    "DD_TAGS": "ok:1 :bare",
}

HOSTILE_PIECES = ["inf", "nan", "-1", "1e400", "0", "/", "@", ":", " ", "http://", "unix://", "\u00e9", "%s", "x" * 50, "99999999999999999999"]


def random_environment(seed):
    rng = random.Random(seed)
    env = {}
    for variable in VARIABLES:
        env[variable] = "".join(rng.choice(HOSTILE_PIECES) for _ in range(rng.randint(1, 3)))
    env["DD_PROFILING_ENABLED"] = "true"  # the profiler runs, whatever it was given
    return env


def refused_variables(environ):
    """The variables load_config warns about for ``environ``, in-process."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("profiler_core.config")
    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    try:
        load_config(environ)
    finally:
        logger.removeHandler(handler)
    return {v for v in environ for m in records if v + "=" in m or "in %s " % v in m}


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


@pytest.mark.parametrize("case", ["issue", "issue-agent-down", "random-1", "random-2", "debug"])
def test_hostile_values_run_the_program_to_its_end_without_a_traceback(tmp_path, case):
    if case.startswith("issue"):
        env = dict(ISSUE_VALUES)
    else:
        env = random_environment(case)
    if case == "debug":
        env["DD_TRACE_DEBUG"] = "true"
    if case == "issue-agent-down":
        # The hostile agent URL falls back to host and port: a closed local port, never a real agent.
        env.update(DD_AGENT_HOST="127.0.0.1", DD_TRACE_AGENT_PORT=str(closed_port()))
    else:
        # Contained: files only under tmp_path (a hostile value here could be "/"), and no agent to reach.
        env["DD_PROFILING_OUTPUT_PPROF"] = str(tmp_path) + "/"
    result = run_launched([sys.executable, "{script}"], tmp_path, env_extra=env, script=SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "program: done" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    refused = refused_variables(env)
    if case == "issue":
        assert refused >= set(ISSUE_VALUES) - {"DD_PROFILING_EXCEPTION_ENABLED", "DD_PROFILING_AGENTLESS"}
    if case == "issue-agent-down":
        assert "not uploaded before exit" in result.stderr
    for variable in refused:
        assert variable in result.stderr, (variable, result.stderr[-3000:])
