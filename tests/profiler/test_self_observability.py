"""The profiler reports on itself: Profiler.stats() and DD_TRACE_DEBUG (issue #17, item 5), and
agentless without a key is one clear line (item 3)."""

import logging
import sys
import time

from launching import run_launched
from profiler import Profiler
from profiler_core.interfaces import Collector, Exporter


class Counting(Collector):
    name = "counting"
    sample_types = ("wall-time",)

    def start(self):
        self.recorder.push((), (("thread name", "x"),), {"wall-time": 1})

    def stop(self):
        pass

    def stats(self):
        return {"dropped": 3.0}


class BrokenSink(Exporter):
    name = "brokensink"

    def export(self, profile):
        raise RuntimeError("sink is broken")


class Sink(Exporter):
    name = "sink"

    def export(self, profile):
        pass

    def stats(self):
        return {"sent": 1.0}


def test_stats_report_each_collector_and_exporter_with_the_failures_caught():
    p = Profiler(collectors=[Counting], exporters=[Sink, BrokenSink])
    p.start(stop_on_exit=False)
    p.flush()
    p.stop()
    stats = p.stats()
    assert stats["status"] == "stopped"
    assert stats["collectors"] == {"counting": {"dropped": 3.0, "failures": 0.0}}
    assert stats["exporters"]["sink"] == {"sent": 1.0, "failures": 0.0}
    assert stats["exporters"]["brokensink"] == {"failures": 1.0}
    assert stats["scheduler"]["profiles"] == 1 and stats["scheduler"]["recorder_dropped"] == 0


def test_stats_of_the_real_plugins(tmp_path):
    """The installed collectors and the file exporter report their own figures."""
    p = Profiler(output_pprof=str(tmp_path / "p"), upload_interval=3600)
    p.start(stop_on_exit=False)
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        pass
    p.stop()
    stats = p.stats()
    assert "stack" in stats["collectors"] and "errors" in stats["collectors"]["stack"]
    assert stats["exporters"]["file"]["written"] == 1.0 and stats["exporters"]["file"]["errors"] == 0.0


def test_agentless_without_a_key_is_one_line_and_the_agent_is_used(monkeypatch, caplog):
    monkeypatch.setenv("DD_PROFILING_AGENTLESS", "true")
    monkeypatch.delenv("DD_API_KEY", raising=False)
    monkeypatch.delenv("DD_PROFILING_OUTPUT_PPROF", raising=False)
    with caplog.at_level(logging.WARNING):
        p = Profiler(collectors=[])
        p.start(stop_on_exit=False)
        p.stop()
    assert [e.name for e in p.exporters] == ["agent"]
    assert not p.exporters[0].endpoint.agentless
    assert "DD_API_KEY" in caplog.text and "install profiler[agent]" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)


def test_dd_trace_debug_shows_the_profilers_own_lines(tmp_path):
    script = "import time\nend = time.monotonic() + 0.1\nwhile time.monotonic() < end: pass\n"
    out = tmp_path / "out"
    quiet = run_launched(["--output", str(out), sys.executable, "{script}"], tmp_path, script=script)
    loud = run_launched(
        ["--output", str(out), sys.executable, "{script}"], tmp_path, script=script, env_extra={"DD_TRACE_DEBUG": "true"}
    )
    assert quiet.returncode == 0 and loud.returncode == 0, loud.stderr
    assert "DEBUG" not in quiet.stderr
    assert "profiler started" in loud.stderr and "DEBUG [profiler" in loud.stderr
    assert "wrote " in loud.stderr and "profiler configuration" in loud.stderr
    assert "Traceback" not in loud.stderr
