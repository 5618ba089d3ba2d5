"""Exception types behave exactly as without the profiler, on every supported version (issue: OSError's
keyword arguments broke under the old constructor hook, and requests' exceptions with them)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_exception.collector import ExceptionCollector

import exception_behaviours

HERE = os.path.dirname(os.path.abspath(__file__))


def outcomes_while_collecting():
    c = ExceptionCollector(Recorder(), ProfilerConfig(exception_enabled=True, exception_sampling_interval=1))
    c.start()
    try:
        return exception_behaviours.all_outcomes(), c.stats()
    finally:
        c.stop()


def test_every_case_has_the_same_outcome_with_and_without_the_collector():
    without = exception_behaviours.all_outcomes()
    with_collector, stats = outcomes_while_collecting()
    after = exception_behaviours.all_outcomes()
    assert with_collector == without
    assert after == without
    assert stats["raised"] > 50  # the cases really ran under the collector
    # The cases that broke under the old hook, spelled out:
    assert any("KwargsOSError" in o and "ok:" in o for o in with_collector)
    assert any(o == "ok: ConnectionError response=None" for o in with_collector), with_collector[-4:]
    assert any(o == "ok: HTTPError status=500" for o in with_collector), with_collector[-4:]


def _run_cpython_tests(collecting: bool) -> str:
    script = textwrap.dedent(
        """
        import sys, unittest
        if %r:
            from profiler_core.config import ProfilerConfig
            from profiler_core.recorder import Recorder
            from profiler_exception.collector import ExceptionCollector
            c = ExceptionCollector(Recorder(), ProfilerConfig(exception_enabled=True, exception_sampling_interval=1))
            c.start()
        result = unittest.main(module=None, argv=["x", "test.test_exceptions", "test.test_baseexception"],
                               exit=False, verbosity=0).result
        bad = sorted(str(t) for t, _ in result.failures + result.errors)
        print("RESULT", result.testsRun, len(result.skipped), bad)
        if %r:
            print("RAISED", int(c.stats()["raised"]))
        """
        % (collecting, collecting)
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    return proc.stdout


def test_cpython_exception_regression_tests_pass_as_without_the_collector():
    pytest.importorskip("test.test_exceptions", reason="this interpreter has no 'test' package")
    pytest.importorskip("test.test_baseexception", reason="this interpreter has no 'test' package")
    without = _run_cpython_tests(False)
    with_collector = _run_cpython_tests(True)
    result_without = [l for l in without.splitlines() if l.startswith("RESULT")]
    result_with = [l for l in with_collector.splitlines() if l.startswith("RESULT")]
    assert result_without and result_with == result_without, (without, with_collector)
    raised = [int(l.split()[1]) for l in with_collector.splitlines() if l.startswith("RAISED")]
    assert raised and raised[0] > 100  # exceptions really went through the collector at interval 1
