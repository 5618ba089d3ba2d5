"""The hand-written pprof encoder writes the bytes protobuf's own serializer writes for the same
profile, on arbitrary snapshots (the reference below builds the message with protobuf)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from profiler_core.events import CLASS_NAME, SAMPLE_TYPES, Frame
from profiler_core.pprof import encode_profile, profile_pb2
from profiler_core.pprof.encoder import default_sample_type, ordered_sample_types
from profiler_core.pprof.wire import varint
from profiler_core.recorder import RecorderSnapshot


def reference_encoding(snapshot, sample_types=(), period=None, comments=()):
    """The profile built field by field with protobuf, strings interned in the encoder's order."""
    present = set()
    for values in snapshot.samples.values():
        present.update(values)
    types = ordered_sample_types(sample_types, present)
    strings, index = [""], {"": 0}

    def s(text):
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return index[text]

    p = profile_pb2.Profile()
    for name in types:
        p.sample_type.add(type=s(name), unit=s(SAMPLE_TYPES.get(name, "count")))
    functions, locations = {}, {}

    def loc(frame):
        key = (frame.filename, frame.function, frame.lineno)
        if key not in locations:
            fkey = key[:2]
            if fkey not in functions:
                functions[fkey] = len(functions) + 1
                p.function.add(id=functions[fkey], name=s(frame.function), filename=s(frame.filename))
            locations[key] = len(locations) + 1
            p.location.add(id=locations[key]).line.add(function_id=functions[fkey], line=frame.lineno)
        return locations[key]

    for (stack, labels), values in snapshot.samples.items():
        sample = p.sample.add()
        sample.location_id.extend([loc(f) for f in stack])
        row = [0] * len(types)
        for name, value in values.items():
            row[types.index(name)] = value
        sample.value.extend(row)
        has_class = False
        for key, value in labels:
            has_class = has_class or key == CLASS_NAME
            if isinstance(value, int):
                sample.label.add(key=s(key), num=value)
            else:
                sample.label.add(key=s(key), str=s(str(value)))
        if not has_class and stack and stack[0].class_name:
            sample.label.add(key=s(CLASS_NAME), str=s(stack[0].class_name))
    p.time_nanos = snapshot.start_ns
    p.duration_nanos = snapshot.duration_ns
    if period is None and default_sample_type(types) is not None:
        period = (default_sample_type(types), 1)
    if period is not None:
        p.period_type.type = s(period[0])
        p.period_type.unit = s(SAMPLE_TYPES.get(period[0], "count"))
        p.period = period[1]
    default = default_sample_type(types)
    if default is not None:
        p.default_sample_type = s(default)
    all_comments = list(comments) + (["dropped %d samples: recorder full" % snapshot.dropped] if snapshot.dropped else [])
    for comment in all_comments:
        p.comment.append(s(comment))
    p.string_table.extend(strings)
    return p.SerializeToString()


names = st.text(min_size=0, max_size=12)
frames = st.builds(Frame, names, names, st.integers(0, 100000), st.one_of(st.none(), names))
labels = st.lists(st.tuples(st.sampled_from(["thread id", "thread name", "task name", CLASS_NAME, "x"]),
                            st.one_of(st.integers(-2**63, 2**63 - 1), names)), max_size=4).map(tuple)
values = st.dictionaries(st.sampled_from(sorted(SAMPLE_TYPES) + ["custom-count"]), st.integers(0, 2**62), max_size=4)
snapshots = st.builds(
    lambda samples, start, duration, dropped: RecorderSnapshot(start, start + duration, samples, dropped),
    st.dictionaries(st.tuples(st.lists(frames, max_size=6).map(tuple), labels), values, max_size=8),
    st.integers(0, 2**62), st.integers(0, 2**40), st.integers(0, 1000),
)


@settings(max_examples=300, deadline=None)
@given(snapshots, st.lists(st.sampled_from(sorted(SAMPLE_TYPES)), max_size=3),
       st.one_of(st.none(), st.tuples(st.sampled_from(sorted(SAMPLE_TYPES)), st.integers(0, 2**40))),
       st.lists(names, max_size=2))
def test_same_bytes_as_protobuf(snapshot, sample_types, period, comments):
    assert encode_profile(snapshot, sample_types, period, comments) == reference_encoding(
        snapshot, sample_types, period, comments)


def test_varints_as_protobuf_writes_them():
    for value in (0, 1, 127, 128, 300, 2**32, 2**63 - 1, -1, -2**63):
        p = profile_pb2.Profile(time_nanos=value)
        assert p.SerializeToString() == (b"\x48" + varint(value) if value else b"")


def test_a_surrogate_in_a_name_gives_valid_utf8():
    snap = RecorderSnapshot(1, 2, {((Frame("/app/\udcff.py", "f", 1),), ()): {"wall-time": 5}}, 0)
    p = profile_pb2.Profile.FromString(encode_profile(snap))
    assert "/app/\\udcff.py" in list(p.string_table)
