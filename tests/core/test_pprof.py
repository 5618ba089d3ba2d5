import gzip

from profiler_core.events import SAMPLE_TYPES, Frame
from profiler_core.pprof import encode_profile, profile_pb2
from profiler_core.pprof.encoder import ordered_sample_types
from profiler_core.recorder import Recorder, RecorderSnapshot

MAIN = Frame("/app/main.py", "main", 30)
WORK = Frame("/app/work.py", "Worker.run", 12, "Worker")
LEAF = Frame("/app/work.py", "compute", 5)


def decode(data):
    p = profile_pb2.Profile.FromString(data)
    s = list(p.string_table)
    return p, s


def test_round_trip_every_field():
    r = Recorder()
    r.push((LEAF, WORK, MAIN), (("thread id", 140), ("thread name", "worker")), {"cpu-time": 700, "cpu-samples": 1})
    r.push((WORK, MAIN), (("thread id", 140), ("thread name", "worker")), {"wall-time": 900, "wall-samples": 2})
    r.push((LEAF, MAIN), (("exception type", "builtins.ValueError"),), {"exception-samples": 3})
    snap = r.flush()
    data = encode_profile(snap, sample_types=("wall-time",), period=("wall-time", 10_000_000), comments=("hello",))
    p, s = decode(data)

    assert s[0] == ""
    assert len(s) == len(set(s)), "string table must be deduplicated"
    types = [(s[t.type], s[t.unit]) for t in p.sample_type]
    assert types == [
        ("cpu-samples", "count"),
        ("cpu-time", "nanoseconds"),
        ("wall-samples", "count"),
        ("wall-time", "nanoseconds"),
        ("exception-samples", "count"),
    ]
    assert p.time_nanos == snap.start_ns
    assert p.duration_nanos == snap.end_ns - snap.start_ns > 0
    assert (s[p.period_type.type], s[p.period_type.unit], p.period) == ("wall-time", "nanoseconds", 10_000_000)
    assert [s[c] for c in p.comment] == ["hello"]

    functions = {f.id: f for f in p.function}
    assert {(s[f.name], s[f.filename]) for f in functions.values()} == {
        ("main", "/app/main.py"),
        ("Worker.run", "/app/work.py"),
        ("compute", "/app/work.py"),
    }
    assert len({f.id for f in p.function}) == 3 and all(f.id > 0 for f in p.function)
    locations = {}
    for loc in p.location:
        assert loc.id > 0 and len(loc.line) == 1
        f = functions[loc.line[0].function_id]
        locations[loc.id] = (s[f.filename], s[f.name], loc.line[0].line)
    assert len(locations) == 3, "identical frames share one location"

    rows = []
    for sample in p.sample:
        stack = [locations[i][1] for i in sample.location_id]
        labels = {s[l.key]: (s[l.str] if l.str else l.num) for l in sample.label}
        rows.append((stack, labels, list(sample.value)))
    rows.sort()
    assert rows == sorted(
        [
            (["compute", "Worker.run", "main"], {"thread id": 140, "thread name": "worker"}, [1, 700, 0, 0, 0]),
            (["Worker.run", "main"], {"thread id": 140, "thread name": "worker", "class name": "Worker"}, [0, 0, 2, 900, 0]),
            (["compute", "main"], {"exception type": "builtins.ValueError"}, [0, 0, 0, 0, 3]),
        ]
    )


def test_numeric_labels_are_num_and_string_labels_are_str():
    r = Recorder()
    r.push((LEAF,), (("thread id", 1), ("lock name", "app.py:3:lock")), {"lock-acquire": 1})
    p, s = decode(encode_profile(r.flush()))
    (sample,) = p.sample
    by_key = {s[l.key]: l for l in sample.label}
    assert by_key["thread id"].num == 1 and by_key["thread id"].str == 0
    assert s[by_key["lock name"].str] == "app.py:3:lock" and by_key["lock name"].num == 0


def test_every_ddtrace_sample_type_has_its_unit():
    snap = RecorderSnapshot(0, 1, {((LEAF,), ()): {name: 1 for name in SAMPLE_TYPES}}, 0)
    p, s = decode(encode_profile(snap))
    assert [(s[t.type], s[t.unit]) for t in p.sample_type] == list(SAMPLE_TYPES.items())
    assert SAMPLE_TYPES["alloc-space"] == "bytes" and SAMPLE_TYPES["lock-release-hold"] == "nanoseconds"


def test_drops_are_reported_as_a_comment():
    snap = RecorderSnapshot(0, 1, {}, 42)
    p, s = decode(encode_profile(snap, ("wall-time",)))
    assert [s[c] for c in p.comment] == ["dropped 42 samples: recorder full"]
    assert [s[t.type] for t in p.sample_type] == ["wall-time"]


def test_max_frames_marker_survives_encoding():
    r = Recorder(max_frames=3)
    r.push(tuple(Frame("d.py", "f%d" % i, i + 1) for i in range(10)), (), {"wall-time": 1})
    p, s = decode(encode_profile(r.flush()))
    names = [s[f.name] for f in p.function]
    assert "<8 frames omitted>" in names
    assert len(p.sample[0].location_id) == 3


def test_unknown_types_come_after_known_ones():
    assert ordered_sample_types(["zzz", "wall-time"], ["cpu-time"]) == ["cpu-time", "wall-time", "zzz"]


def test_output_is_gzip_friendly_and_deterministic():
    snap = RecorderSnapshot(5, 10, {((LEAF, MAIN), ()): {"wall-time": 3}}, 0)
    a = encode_profile(snap)
    assert a == encode_profile(snap)
    assert gzip.decompress(gzip.compress(a)) == a
