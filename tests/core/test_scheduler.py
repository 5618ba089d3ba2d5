import logging
import threading
import time

from profiler_core.config import ProfilerConfig
from profiler_core.events import Frame
from profiler_core.interfaces import Collector, Exporter
from profiler_core.pprof import profile_pb2
from profiler_core.recorder import Recorder
from profiler_core.scheduler import Scheduler, profile_tags

LEAF = (Frame("a.py", "a", 1),)


class ListExporter(Exporter):
    name = "list"

    def __init__(self, config, delay=0.0, fail=False):
        super().__init__(config)
        self.profiles = []
        self.times = []
        self.delay = delay
        self.fail = fail
        self.stopped_with = None
        self.got = threading.Event()

    def export(self, profile):
        self.times.append(time.monotonic())
        if self.delay:
            time.sleep(self.delay)
        self.profiles.append(profile)
        self.got.set()
        if self.fail:
            raise RuntimeError("upload failed")

    def stop(self, timeout):
        self.stopped_with = timeout


class HeapLikeCollector(Collector):
    name = "heapish"
    sample_types = ("heap-space",)

    def start(self):
        pass

    def stop(self):
        pass

    def snapshot(self):
        self.recorder.push(LEAF, (), {"heap-space": 100})


class BrokenSnapshotCollector(HeapLikeCollector):
    name = "broken"

    def snapshot(self):
        raise RuntimeError("boom")


def test_flush_snapshots_collectors_encodes_and_exports():
    config = ProfilerConfig(service="svc", env="prod", version="3", tags={"team": "x"})
    r = Recorder()
    r.push(LEAF, (), {"wall-time": 5})
    exp = ListExporter(config)
    s = Scheduler(r, [HeapLikeCollector(r, config)], [exp], config)
    profile = s.flush()
    assert exp.profiles == [profile]
    assert profile.seq == 0 and profile.tags == {"team": "x", "service": "svc", "env": "prod", "version": "3"}
    p = profile_pb2.Profile.FromString(profile.pprof)
    types = [p.string_table[t.type] for t in p.sample_type]
    assert types == ["wall-time", "heap-space"]
    assert sorted(list(x.value) for x in p.sample) == [[5, 100]]
    assert s.flush().seq == 1


def test_declared_sample_types_appear_even_without_samples():
    config = ProfilerConfig()
    r = Recorder()
    exp = ListExporter(config)

    class Quiet(HeapLikeCollector):
        sample_types = ("lock-acquire", "lock-acquire-wait")

        def snapshot(self):
            pass

    r.push(LEAF, (), {"wall-time": 1})
    Scheduler(r, [Quiet(r, config)], [exp], config).flush()
    p = profile_pb2.Profile.FromString(exp.profiles[0].pprof)
    assert [p.string_table[t.type] for t in p.sample_type] == ["wall-time", "lock-acquire", "lock-acquire-wait"]


def test_empty_periods_make_no_profile():
    config = ProfilerConfig()
    exp = ListExporter(config)
    s = Scheduler(Recorder(), [], [exp], config)
    assert s.flush() is None
    assert exp.profiles == []


def test_exporter_and_collector_failures_are_isolated(caplog):
    config = ProfilerConfig()
    r = Recorder()
    bad, good = ListExporter(config, fail=True), ListExporter(config)
    s = Scheduler(r, [BrokenSnapshotCollector(r, config), HeapLikeCollector(r, config)], [bad, good], config)
    with caplog.at_level(logging.ERROR):
        profile = s.flush()
    assert profile is not None
    assert len(bad.profiles) == 1 and len(good.profiles) == 1
    assert "upload failed" in caplog.text and "boom" in caplog.text


def test_thread_flushes_every_interval_minus_export_time():
    interval, delay = 0.2, 0.1
    config = ProfilerConfig(upload_interval=interval)
    exp = ListExporter(config, delay=delay)
    r = Recorder()
    s = Scheduler(r, [HeapLikeCollector(r, config)], [exp], config)
    s.start()
    try:
        deadline = time.monotonic() + 5
        while len(exp.times) < 4 and time.monotonic() < deadline:
            exp.got.wait(1)
            exp.got.clear()
    finally:
        s.stop(flush=False)
    gaps = [b - a for a, b in zip(exp.times, exp.times[1:])]
    assert len(gaps) >= 3
    # Export time is subtracted from the wait: starts are an interval apart, not interval + delay.
    assert all(interval * 0.8 < g < interval + delay * 0.6 for g in gaps), gaps


def test_thread_is_a_named_daemon_and_stop_flushes_once_more():
    config = ProfilerConfig(upload_interval=3600)
    r = Recorder()
    exp = ListExporter(config)
    s = Scheduler(r, [], [exp], config)
    s.start()
    t = s._thread
    assert t.daemon and t.name == "profiler-scheduler" and s.running
    r.push(LEAF, (), {"wall-time": 1})
    s.stop(flush=True, timeout=1.0)
    assert not t.is_alive() and not s.running
    assert len(exp.profiles) == 1
    assert exp.stopped_with is not None and 0 <= exp.stopped_with <= 1.0


def test_drops_are_logged(caplog):
    config = ProfilerConfig()
    r = Recorder(max_keys=1)
    r.push(LEAF, (), {"wall-time": 1})
    r.push((Frame("b.py", "b", 1),), (), {"wall-time": 1})
    s = Scheduler(r, [], [ListExporter(config)], config)
    with caplog.at_level(logging.WARNING):
        s.flush()
    assert "1 samples dropped" in caplog.text
    assert s.dropped_total == 1


def test_profile_tags_skip_unset_fields():
    assert profile_tags(ProfilerConfig(service="s")) == {"service": "s"}
