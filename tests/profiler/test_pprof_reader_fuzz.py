"""Fuzzing the pprof reader: whatever the bytes, a profile or one ProfileError, quickly; never another
exception (IndexError, RecursionError, KeyError...) nor a hang, in the reader or in what the
commands then do with what it read."""

import gzip

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler.cli import top
from profiler.exports import collapsed, speedscope
from profiler.flamegraph import build_tree, flatten
from profiler.pprof_reader import ProfileError, ProfileSet, add_profile, decode, read_file
from profiler_core.events import Frame
from profiler_core.pprof import encode_profile, profile_pb2
from profiler_core.recorder import Recorder

BOUNDED = settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.too_slow], database=None)

index = st.integers(min_value=-2, max_value=12)
ident = st.integers(min_value=0, max_value=6)


@st.composite
def profiles(draw):
    """Profile messages whose ids and string indices are sometimes right, often not."""
    p = profile_pb2.Profile()
    strings = draw(st.lists(st.text(max_size=8), max_size=10))
    if draw(st.booleans()):
        strings = [""] + strings
    p.string_table.extend(strings)
    for t, u in draw(st.lists(st.tuples(index, index), max_size=3)):
        p.sample_type.add(type=t, unit=u)
    for fid, name, filename in draw(st.lists(st.tuples(ident, index, index), max_size=4)):
        p.function.add(id=fid, name=name, filename=filename)
    for lid, lines, address in draw(st.lists(st.tuples(ident, st.lists(st.tuples(ident, index), max_size=3), st.integers(0, 2**64 - 1)), max_size=4)):
        loc = p.location.add(id=lid, address=address)
        for fid, line in lines:
            loc.line.add(function_id=fid, line=line)
    for locs, values, labels in draw(st.lists(st.tuples(
        st.lists(ident, max_size=5),
        st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4),
        st.lists(st.tuples(index, index, st.integers(-5, 5)), max_size=3),
    ), max_size=5)):
        sample = p.sample.add(location_id=locs, value=values)
        for key, string, num in labels:
            sample.label.add(key=key, str=string, num=num)
    p.duration_nanos = draw(st.integers(-(2**63), 2**63 - 1))
    return p


def read_and_use(data: bytes) -> None:
    """Read ``data`` as a profile and run every command's aggregation on it; ProfileError is the only way out."""
    out = ProfileSet()
    try:
        add_profile(out, decode("fuzz.pprof", data), "fuzz.pprof")
    except ProfileError as exc:
        assert str(exc).startswith("fuzz.pprof: ") and "\n" not in str(exc)
        return
    for sample_type in out.types():
        for by in ("function", "line", "file", "thread name"):
            top(out, sample_type, by)
        collapsed(out, sample_type)
        flatten(build_tree(out, sample_type), {})
    speedscope(out, out.types())


@BOUNDED
@given(profiles())
def test_structured_profiles(profile):
    read_and_use(profile.SerializeToString())


def valid_bytes() -> bytes:
    recorder = Recorder()
    main, query = Frame("/app/main.py", "main", 1), Frame("/app/db.py", "query", 2)
    recorder.push((query, main), (("thread name", "worker"), ("thread id", 7)), {"cpu-time": 5, "wall-time": 9})
    recorder.push((main,), (), {"alloc-space": 4096})
    return encode_profile(recorder.flush())


VALID = valid_bytes()


@BOUNDED
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"])), min_size=1, max_size=6))
def test_mutated_valid_profiles(edits):
    data = bytearray(VALID)
    for position, byte, how in edits:
        position %= max(1, len(data))
        if how == "set":
            data[position] = byte
        elif how == "insert":
            data.insert(position, byte)
        elif data:
            del data[position]
    read_and_use(bytes(data))


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], database=None)
@given(st.binary(max_size=300), st.sampled_from(["raw", "gzip", "gzip-truncated", "zstd-magic"]))
def test_files_of_any_bytes(tmp_path, payload, wrapping):
    if wrapping == "gzip":
        payload = gzip.compress(payload)
    elif wrapping == "gzip-truncated":
        payload = gzip.compress(payload)[: max(2, len(payload) // 2)]
    elif wrapping == "zstd-magic":
        payload = b"\x28\xb5\x2f\xfd" + payload
    path = tmp_path / "fuzz.pprof"
    path.write_bytes(payload)
    try:
        data = read_file(str(path), max_bytes=1 << 16)
    except ProfileError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    try:
        add_profile(ProfileSet(), decode(str(path), data), str(path))
    except ProfileError:
        pass
