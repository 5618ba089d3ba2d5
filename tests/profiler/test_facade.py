import logging
import os
import threading

import pytest

from profiler import Profiler
from profiler.core import _PROFILERS
from profiler_core.interfaces import Collector, Exporter


class Sink(Exporter):
    name = "sink"
    instances = []

    def __init__(self, config):
        super().__init__(config)
        self.profiles = []
        Sink.instances.append(self)

    def export(self, profile):
        self.profiles.append(profile)


class Counting(Collector):
    name = "counting"
    sample_types = ("wall-time",)
    starts = 0
    stops = 0

    def start(self):
        type(self).starts += 1
        self.recorder.push((), (("thread name", "x"),), {"wall-time": 1})

    def stop(self):
        type(self).stops += 1


class FailsToStart(Collector):
    name = "fails"

    def start(self):
        raise RuntimeError("cannot start")

    def stop(self):
        raise AssertionError("never started, never stopped")


class Disabled(Counting):
    name = "disabled"

    @classmethod
    def is_enabled(cls, config):
        return config.lock_enabled


@pytest.fixture(autouse=True)
def reset():
    Sink.instances.clear()
    Counting.starts = Counting.stops = 0
    yield


def test_constructor_arguments_win_over_environment(monkeypatch):
    monkeypatch.setenv("DD_SERVICE", "from-env")
    monkeypatch.setenv("DD_ENV", "staging")
    p = Profiler(service="from-arg", version="1.0", tags={"team": "a"}, url="http://h:1", api_key="k")
    assert p.config.service == "from-arg"
    assert p.config.env == "staging"
    assert p.config.version == "1.0"
    assert p.config.tags == {"team": "a"}
    assert p.config.agent_url == "http://h:1" and p.config.api_key == "k"


def test_start_stop_lifecycle_and_flush(caplog):
    p = Profiler(service="svc", collectors=[Counting, FailsToStart], exporters=[Sink])
    with caplog.at_level(logging.ERROR):
        p.start(stop_on_exit=False)
    assert "cannot start" in caplog.text
    assert p.status == "running"
    assert [c.name for c in p.collectors] == ["counting"]
    p.start()  # idempotent
    assert Counting.starts == 1
    p.stop()
    p.stop()  # idempotent
    assert p.status == "stopped" and Counting.stops == 1
    (sink,) = Sink.instances
    assert len(sink.profiles) == 1
    assert sink.profiles[0].tags["service"] == "svc"


def test_disabled_collectors_are_not_started():
    p = Profiler(lock_enabled=False, collectors=[Disabled], exporters=[Sink])
    p.start(stop_on_exit=False)
    assert p.collectors == []
    p.stop()


def test_concurrent_start_and_stop_are_safe():
    p = Profiler(collectors=[Counting], exporters=[Sink])
    barrier = threading.Barrier(8)

    def hammer():
        barrier.wait()
        p.start(stop_on_exit=False)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counting.starts == 1
    threads = [threading.Thread(target=p.stop) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counting.stops == 1


def test_restart_after_stop_starts_fresh():
    p = Profiler(collectors=[Counting], exporters=[Sink])
    p.start(stop_on_exit=False)
    p.stop()
    p.start(stop_on_exit=False)
    p.stop()
    assert Counting.starts == 2 and Counting.stops == 2
    assert len(Sink.instances) == 2


def test_entry_point_discovery_loads_plugins_and_skips_broken_ones(fake_plugin_path, caplog):
    from profiler import registry

    with caplog.at_level(logging.WARNING, logger="profiler.registry"):
        found = registry.available_collectors()
    assert "fake" in found and found["fake"].__name__ == "FakeStackCollector"
    assert "broken" not in found
    assert "broken" in caplog.text
    assert "file" in registry.available_exporters()


def test_no_exporter_warns(caplog):
    p = Profiler(collectors=[], exporters=[])
    with caplog.at_level(logging.WARNING, logger="profiler"):
        p.start(stop_on_exit=False)
    p.stop()
    assert "no profile exporter" in caplog.text


def test_running_profilers_are_registered_for_fork():
    p = Profiler(collectors=[], exporters=[Sink])
    p.start(stop_on_exit=False)
    try:
        assert p in _PROFILERS
    finally:
        p.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_a_fresh_profiler_without_parent_data(tmp_path):
    out = tmp_path / "child.txt"
    p = Profiler(collectors=[Counting], exporters=[Sink], upload_interval=3600)
    p.start(stop_on_exit=False)
    try:
        p.recorder.push((), (("thread name", "parent-only"),), {"wall-time": 5})
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                snap = p.recorder.flush()
                alive = p._scheduler.running
                out.write_text("%d %d" % (len(snap.samples), int(alive)))
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        samples, alive = map(int, out.read_text().split())
        assert samples == 0, "child must not inherit the parent's unflushed samples"
        assert alive == 1, "child runs its own scheduler thread"
        assert len(p.recorder.flush().samples) == 2  # the parent keeps its own
    finally:
        p.stop()
