"""The timeline: timestamped samples kept apart, bounded, written with ``end_timestamp_ns``."""

import time

import pytest

from profiler_core.events import Frame
from profiler_core.pprof import encode_profile
from profiler_core.pprof.profile_pb2 import Profile
from profiler_core.recorder import Recorder
from profiler_core.timeline import END_TIMESTAMP_NS, Timeline

STACK = (Frame("app.py", "work", 3), Frame("app.py", "main", 9))
LABELS = (("thread id", 1), ("thread name", "MainThread"))


def _decode(snapshot):
    profile = Profile.FromString(encode_profile(snapshot))
    st = profile.string_table
    types = [st[t.type] for t in profile.sample_type]
    out = []
    for sample in profile.sample:
        labels = {st[label.key]: (st[label.str] if label.str else label.num) for label in sample.label}
        out.append((labels, dict(zip(types, sample.value))))
    return profile, out


def test_timestamped_pushes_are_samples_of_their_own_with_the_epoch_moment():
    recorder = Recorder(timeline=True)
    t0 = time.monotonic_ns()
    for i in range(3):
        recorder.push(STACK, LABELS, {"wall-time": 10 + i, "cpu-time": i}, t0 + i * 1000)
    recorder.push(STACK, LABELS, {"wall-time": 5})  # no moment: aggregated
    snapshot = recorder.flush()
    assert len(snapshot.timed) == 3 and len(snapshot.samples) == 1
    assert snapshot.totals() == {"wall-time": 38, "cpu-time": 3}
    profile, samples = _decode(snapshot)
    stamped = [(labels[END_TIMESTAMP_NS], values) for labels, values in samples if END_TIMESTAMP_NS in labels]
    assert [values["wall-time"] for _, values in stamped] == [10, 11, 12]
    # epoch nanoseconds, 1 µs apart, inside the profile's period
    moments = [moment for moment, _ in stamped]
    assert [b - a for a, b in zip(moments, moments[1:])] == [1000, 1000]
    assert profile.time_nanos - 10**9 <= moments[0] <= profile.time_nanos + profile.duration_nanos + 10**9
    assert abs(moments[0] - time.time_ns()) < 5 * 10**9


def test_without_the_timeline_a_moment_changes_nothing():
    recorder = Recorder()
    recorder.push(STACK, LABELS, {"wall-time": 1}, time.monotonic_ns())
    recorder.push(STACK, LABELS, {"wall-time": 2}, time.monotonic_ns())
    snapshot = recorder.flush()
    assert not snapshot.timed and dict(snapshot.samples) == {(STACK, LABELS): {"wall-time": 3}}
    _, samples = _decode(snapshot)
    assert all(END_TIMESTAMP_NS not in labels for labels, _ in samples)


def test_a_full_timeline_keeps_the_values_and_counts_what_lost_its_moment():
    recorder = Recorder(timeline=True, max_timed_samples=100)
    for i in range(250):
        recorder.push(STACK, LABELS, {"wall-time": 1, "wall-samples": 1}, time.monotonic_ns())
    snapshot = recorder.flush()
    assert len(snapshot.timed) == 100 and snapshot.untimed == 150
    assert snapshot.totals() == {"wall-time": 250, "wall-samples": 250}
    assert recorder.flush().untimed == 0  # per period
    profile = Profile.FromString(encode_profile(snapshot))
    assert "150 samples without a timestamp: timeline full" in [profile.string_table[c] for c in profile.comment]


def test_sample_types_of_different_samples_line_up():
    timeline = Timeline()
    timeline.add(STACK, LABELS, 1, {"wall-time": 5})
    timeline.add(STACK, LABELS, 2, {"lock-acquire": 1, "lock-acquire-wait": 7})
    timeline.add(STACK, LABELS, 3, {"wall-time": 6, "cpu-time": 2})
    taken = list(timeline.take())
    assert [values for _, _, values in taken] == [
        {"wall-time": 5},
        {"lock-acquire": 1, "lock-acquire-wait": 7},
        {"wall-time": 6, "cpu-time": 2},
    ]
    assert [b[1] - a[1] for a, b in zip(taken, taken[1:])] == [1, 1]
    assert len(timeline) == 0 and not timeline.take()


def test_relabelled_samples_keep_their_moments_and_values():
    recorder = Recorder(timeline=True)
    other = (("thread id", 2),)
    recorder.push(STACK, LABELS, {"wall-time": 1}, 100)
    recorder.push(STACK, other, {"wall-time": 2}, 200)
    timed = recorder.flush().timed
    relabelled = list(timed.relabelled(lambda labels: labels + (("trace endpoint", "GET /"),) if labels is LABELS else labels))
    assert [(key[1], values) for key, _, values in relabelled] == [
        (LABELS + (("trace endpoint", "GET /"),), {"wall-time": 1}),
        (other, {"wall-time": 2}),
    ]


def test_bounds_are_checked():
    with pytest.raises(ValueError):
        Timeline(0)
