"""ddtrace's Profiler arguments and attributes, and ddtrace.profiling.auto.start_profiler()'s twin."""

import os
import subprocess
import sys
import textwrap

from profiler import Profiler


def test_ddtrace_collector_switches_map_to_the_configuration():
    p = Profiler(
        _stack_collector_enabled=False,
        _lock_collector_enabled=False,
        _memory_collector_enabled=True,
        _exception_profiling_enabled=True,
    )
    c = p.config
    assert (c.stack_enabled, c.lock_enabled, c.memory_enabled, c.exception_enabled) == (False, False, True, True)


def test_tracer_and_not_applicable_arguments_are_accepted():
    tracer = object()
    p = Profiler(tracer=tracer, enable_code_provenance=True, endpoint_collection_enabled=False)
    assert p.tracer is tracer


def test_env_service_version_tags_attributes():
    p = Profiler(env="prod", service="api", version="1.2", tags={"team": "x"})
    assert (p.env, p.service, p.version) == ("prod", "api", "1.2")
    assert p.tags["team"] == "x"


def test_start_profiler_in_a_forked_child_profiles_once(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys, time
        import profiler.auto
        from profiler.core import running_profiler
        first = profiler.auto.start_profiler()
        assert first is running_profiler() and first is profiler.auto.profiler
        pid = os.fork()
        if pid == 0:
            p = profiler.auto.start_profiler()
            again = profiler.auto.start_profiler()
            ok = p is again and p.status == "running" and running_profiler() is p
            sum(i * i for i in range(200000))
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    env = dict(os.environ, DD_PROFILING_OUTPUT_PPROF=str(tmp_path / "p"), DD_PROFILING_UPLOAD_INTERVAL="60")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "child 0" in proc.stdout, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
