import gzip
import io

import pytest

from profiler.cli import format_value, main, print_top, top
from profiler.pprof_reader import load
from profiler_core.events import Frame
from profiler_core.pprof import encode_profile
from profiler_core.recorder import Recorder
from pprof_helpers import write_profile as write

MAIN = Frame("/app/main.py", "main", 10)
HANDLE = Frame("/app/web.py", "handle", 20)
QUERY = Frame("/app/db.py", "query", 30)
RENDER = Frame("/app/web.py", "render", 40)




@pytest.fixture
def known(tmp_path):
    # cpu-time: query 600 ms (under handle), render 300 ms (under handle), main itself 100 ms.
    return write(
        tmp_path / "a.pprof",
        [
            ((QUERY, HANDLE, MAIN), (("thread name", "worker"),), {"cpu-time": 600_000_000, "wall-time": 900_000_000}),
            ((RENDER, HANDLE, MAIN), (("thread name", "MainThread"),), {"cpu-time": 300_000_000}),
            ((MAIN,), (("thread name", "MainThread"),), {"cpu-time": 100_000_000}),
        ],
    )


def test_flat_and_cumulative_totals(known):
    rows = {key.split()[0]: (flat, cum) for key, flat, cum in top(load([known]), "cpu-time")}
    assert rows == {
        "query": (600_000_000, 600_000_000),
        "render": (300_000_000, 300_000_000),
        "main": (100_000_000, 1_000_000_000),
        "handle": (0, 900_000_000),
    }


def test_rows_sorted_by_flat_and_by_other_groupings(known):
    profiles = load([known])
    assert [k.split()[0] for k, _f, _c in top(profiles, "cpu-time")] == ["query", "render", "main", "handle"]
    assert top(profiles, "cpu-time", "thread name") == [
        ("worker", 600_000_000, 600_000_000),
        ("MainThread", 400_000_000, 400_000_000),
    ]
    lines = dict((k, f) for k, f, _c in top(profiles, "cpu-time", "line"))
    assert lines["query  app/db.py:30"] == 600_000_000
    files = dict((k, c) for k, _f, c in top(profiles, "cpu-time", "file"))
    assert files["/app/web.py"] == 900_000_000


def test_several_files_are_merged(known, tmp_path):
    other = write(tmp_path / "b.pprof", [((QUERY, HANDLE, MAIN), (), {"cpu-time": 400_000_000})])
    rows = {key.split()[0]: flat for key, flat, _c in top(load([known, other]), "cpu-time")}
    assert rows["query"] == 1_000_000_000


def test_printed_table_has_human_units_and_percentages(known):
    out = io.StringIO()
    print_top(load([known]), "cpu-time", "function", 10, out)
    text = out.getvalue()
    assert text.splitlines()[0].startswith("cpu-time: total 1s")
    query_line = next(line for line in text.splitlines() if "query" in line)
    assert query_line.split()[:4] == ["600ms", "60.0%", "600ms", "60.0%"]


def test_format_value():
    assert format_value(1_500_000_000, "nanoseconds") == "1.5s"
    assert format_value(2_500, "nanoseconds") == "2.5µs"
    assert format_value(3 * 1024 * 1024, "bytes") == "3MiB"
    assert format_value(42, "count") == "42"


def test_main_prints_and_rejects_missing_files_and_types(known, capsys):
    assert main(["top", known, "--type", "wall-time"]) == 0
    assert "wall-time: total 900ms" in capsys.readouterr().out
    assert main(["top", "/no/such.pprof"]) == 2
    with pytest.raises(SystemExit, match="no 'alloc-space' samples"):
        main(["top", known, "--type", "alloc-space"])


def test_reads_zstd_profiles_as_ddtrace_writes_them(known, tmp_path):
    zstandard = pytest.importorskip("zstandard", reason="zstandard not installed")
    raw = gzip.decompress(open(known, "rb").read())
    path = tmp_path / "dd.pprof"
    path.write_bytes(zstandard.ZstdCompressor().compress(raw))
    rows = {key.split()[0]: flat for key, flat, _c in top(load([str(path)]), "cpu-time")}
    assert rows["query"] == 600_000_000


def test_corrupt_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pprof"
    bad.write_bytes(b"\x1f\x8b" + b"not gzip at all")
    assert main(["top", str(bad)]) == 2
    assert "cannot read profile" in capsys.readouterr().err


def test_collapsed_export(known, capsys):
    assert main(["collapsed", known, "--type", "cpu-time"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "main (/app/main.py);handle (/app/web.py);query (/app/db.py) 600000000"
    assert "main (/app/main.py) 100000000" in lines
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines) == 1_000_000_000


def test_speedscope_export(known, tmp_path):
    import json

    out = tmp_path / "p.speedscope.json"
    assert main(["speedscope", known, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["$schema"].endswith("file-format-schema.json")
    by_name = {p["name"].rsplit(" ", 1)[1]: p for p in doc["profiles"]}
    assert set(by_name) == {"cpu-time", "wall-time"}
    cpu = by_name["cpu-time"]
    assert cpu["unit"] == "nanoseconds" and cpu["endValue"] == 1_000_000_000 == sum(cpu["weights"])
    frames = doc["shared"]["frames"]
    heaviest = cpu["samples"][cpu["weights"].index(600_000_000)]
    assert [frames[i]["name"] for i in heaviest] == ["main", "handle", "query"]  # root first


def test_diff_shows_what_got_slower_per_second(known, tmp_path, capsys):
    from profiler.cli import diff

    def timed(path, pushes, seconds):
        from profiler_core.recorder import RecorderSnapshot

        r = Recorder()
        for stack, labels, values in pushes:
            r.push(stack, labels, values)
        snap = r.flush()
        snap = RecorderSnapshot(0, int(seconds * 1e9), snap.samples, 0)
        path.write_bytes(gzip.compress(encode_profile(snap)))
        return str(path)

    base = timed(tmp_path / "base.pprof", [((QUERY, MAIN), (), {"cpu-time": 100}), ((RENDER, MAIN), (), {"cpu-time": 100})], 1)
    # twice as long a profile: query got 3x slower per second, render the same per second
    new = timed(tmp_path / "new.pprof", [((QUERY, MAIN), (), {"cpu-time": 600}), ((RENDER, MAIN), (), {"cpu-time": 200})], 2)
    rows = {k.split()[0]: (a, b) for k, a, b in diff(load([base]), load([new]), "cpu-time")}
    assert rows["query"] == (100, 300) and rows["render"] == (100, 100)
    assert main(["diff", base, new]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cpu-time/s")
    assert "query" in lines[1] and "+200ns" in lines[1] and "+200%" in lines[1]


def test_sampled_event_counts_are_shown_as_estimates_and_say_so(tmp_path, capsys):
    """Lock and exception samples count each sampled event once (as ddtrace's, for Datadog);
    the profile records the rate, and ``top`` scales them up and says that it does."""
    from profiler_core.sampling import rates_comment

    recorder = Recorder()
    recorder.push((QUERY, MAIN), (), {"lock-acquire": 3, "lock-acquire-wait": 5_000, "cpu-time": 7})
    path = tmp_path / "locks.pprof"
    comments = [rates_comment({"lock-acquire": 0.01, "lock-acquire-wait": 0.01})]
    path.write_bytes(gzip.compress(encode_profile(recorder.flush(), comments=comments)))
    profiles = load([str(path)])
    assert profiles.estimated == {"lock-acquire": 100.0, "lock-acquire-wait": 100.0}
    (sample,) = profiles.samples
    assert sample.values == {"lock-acquire": 300, "lock-acquire-wait": 500_000, "cpu-time": 7}
    assert main(["top", "--type", "lock-acquire", str(path)]) in (0, None)
    out = capsys.readouterr().out
    assert "total 300" in out and "estimated" in out and "1%" in out
    assert main(["top", "--type", "cpu-time", str(path)]) in (0, None)
    assert "estimated" not in capsys.readouterr().out


def test_one_endpoint_one_request_or_any_label_value(tmp_path, capsys):
    """--endpoint, --span (a span or the request it is the root of, as Datadog shows 64-bit ids)
    and --where keep only the matching samples, in every command."""
    work = Frame("/app/web.py", "work", 1)
    other = Frame("/app/web.py", "other", 2)
    big_id = 2**64 - 5  # written as the signed number -5, as ddtrace writes it
    path = write(tmp_path / "t.pprof", [
        ((work,), (("span id", 7), ("local root span id", 3), ("trace endpoint", "GET /a")), {"cpu-time": 400}),
        ((other,), (("span id", big_id - 2**64), ("local root span id", big_id - 2**64), ("trace endpoint", "GET /b")),
         {"cpu-time": 200}),
        ((other,), (("thread name", "bg"),), {"cpu-time": 100}),
    ])

    def top_of(*options):
        assert main(["top", path, "--type", "cpu-time", *options]) == 0
        return capsys.readouterr().out

    assert "total 400ns" in top_of("--endpoint", "GET /a")
    assert "total 400ns" in top_of("--span", "3")  # the request whose local root is span 3
    assert "total 400ns" in top_of("--span", "7")
    assert "total 200ns" in top_of("--span", str(big_id))
    assert "total 100ns" in top_of("--where", "thread name=bg")
    assert main(["collapsed", path, "--endpoint", "GET /b"]) == 0
    assert capsys.readouterr().out == "other (/app/web.py) 200\n"
    assert main(["top", path, "--endpoint", "GET /none"]) == 1
    assert "no samples match --endpoint 'GET /none'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["top", path, "--where", "novalue"])
