"""The ``profiler`` command on hostile files: one line naming the file and a non-zero exit, bounded
memory, nothing from the file reaching the terminal unescaped."""

import gzip
import json
import os
import subprocess
import sys
import zlib

import pytest

from profiler.cli import main
from profiler.flamegraph import inflate
from profiler_core.events import Frame
from profiler_core.pprof import encode_profile, profile_pb2
from profiler_core.recorder import Recorder
from pprof_helpers import write_profile

MAIN = Frame("/app/main.py", "main", 10)
QUERY = Frame("/app/db.py", "query", 30)
COMMANDS = ("top", "collapsed", "flamegraph", "speedscope", "diff")


def minimal_profile():
    """A valid one-sample profile message: cpu-time 5 on main, label thread name = worker."""
    p = profile_pb2.Profile()
    p.string_table.extend(["", "cpu-time", "nanoseconds", "main", "/app/main.py", "thread name", "worker"])
    p.sample_type.add(type=1, unit=2)
    p.function.add(id=1, name=3, filename=4)
    p.location.add(id=1).line.add(function_id=1, line=10)
    sample = p.sample.add(location_id=[1], value=[5])
    sample.label.add(key=5, str=6)
    return p


def write_message(path, profile):
    path.write_bytes(gzip.compress(profile.SerializeToString()))
    return str(path)


def run_command(command, path, tmp_path):
    """``profiler COMMAND path`` with whatever options the command needs."""
    out = str(tmp_path / ("out." + command))
    argv = {
        "top": ["top", path],
        "collapsed": ["collapsed", path],
        "flamegraph": ["flamegraph", path, "-o", out],
        "speedscope": ["speedscope", path, "-o", out],
        "diff": ["diff", path, path],
    }[command]
    return main(argv), out


def one_line_error(capsys, path):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("profiler: ") and path in err, err
    assert "Traceback" not in err
    return err


def dangling(field):
    p = minimal_profile()
    if field == "sample type":
        p.sample_type[0].type = 99
    elif field == "sample type unit":
        p.sample_type[0].unit = -1
    elif field == "function name":
        p.function[0].name = 1000
    elif field == "label key":
        p.sample[0].label[0].key = 77
    elif field == "label string":
        p.sample[0].label[0].str = 78
    elif field == "values":
        p.sample[0].value.append(7)  # two values, one sample type
    elif field == "location":
        p.sample[0].location_id.append(9)
    elif field == "function id":
        p.location[0].line[0].function_id = 4
    return p


@pytest.mark.parametrize("field", [
    "sample type", "sample type unit", "function name", "label key", "label string", "values", "location", "function id",
])
@pytest.mark.parametrize("command", COMMANDS)
def test_out_of_range_indices_are_one_line_naming_the_file(field, command, tmp_path, capsys):
    path = write_message(tmp_path / "bad.pprof", dangling(field))
    code, out = run_command(command, path, tmp_path)
    assert code == 2
    one_line_error(capsys, path)
    assert not os.path.exists(out)


def test_the_minimal_profile_itself_is_fine(tmp_path, capsys):
    path = write_message(tmp_path / "ok.pprof", minimal_profile())
    assert main(["top", path]) == 0
    assert "main" in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_empty_file_is_an_error_and_writes_nothing(command, tmp_path, capsys):
    path = tmp_path / "empty.pprof"
    path.write_bytes(b"")
    code, out = run_command(command, str(path), tmp_path)
    assert code == 2
    assert "empty" in one_line_error(capsys, str(path))
    assert not os.path.exists(out)


@pytest.mark.parametrize("command", ["flamegraph", "speedscope", "collapsed"])
def test_profile_without_samples_is_an_error_naming_it(command, tmp_path, capsys):
    p = minimal_profile()
    del p.sample[:]
    path = write_message(tmp_path / "nosamples.pprof", p)
    with pytest.raises(SystemExit) as exc:
        run_command(command, path, tmp_path)
    assert path in str(exc.value) and "no samples" in str(exc.value)
    assert not os.path.exists(str(tmp_path / ("out." + command)))


def test_garbage_names_the_file(tmp_path, capsys):
    path = tmp_path / "garbage.pprof"
    path.write_bytes(b"\x1f\x8b" + b"not gzip at all")
    assert main(["top", str(path)]) == 2
    one_line_error(capsys, str(path))
    path.write_bytes(b"\xff" * 64)  # not protobuf either
    assert main(["top", str(path)]) == 2
    assert "not a pprof profile" in one_line_error(capsys, str(path))


def deep_profile(tmp_path, depth):
    """One sample of cpu-time 7 on a ``depth``-frame stack (f0 the leaf), as DD_PROFILING_MAX_FRAMES=6000 writes it."""
    recorder = Recorder(max_frames=depth)
    recorder.push(tuple(Frame("/app/deep.py", "f%d" % i, i) for i in range(depth)), (), {"cpu-time": 7})
    path = tmp_path / "deep.pprof"
    path.write_bytes(gzip.compress(encode_profile(recorder.flush())))
    return str(path)


def page_tree(path):
    html = open(path, encoding="utf-8").read()
    start = html.index("const PROFILE = ") + len("const PROFILE = ")
    data = json.loads(html[start:html.index(";</script>", start)])
    return inflate(data["trees"]["cpu-time"], data["strings"])


def test_flamegraph_of_a_6000_frame_stack(tmp_path, capsys):
    path = deep_profile(tmp_path, 6000)
    out = tmp_path / "deep.html"
    assert main(["flamegraph", path, "-o", str(out)]) == 0
    node, names = page_tree(out), []
    while node["children"]:
        (node,) = node["children"]
        names.append(node["name"])
    # the page draws 1024 levels at most (the browser's flame graph code recurses): the innermost
    # 1023 frames under a marker, as the collectors cut deep stacks
    assert names[0] == "<4977 frames omitted>" and names[1:] == ["f%d" % i for i in reversed(range(1023))]
    assert node["value"] == 7
    assert main(["diff", path, path, "--html", str(tmp_path / "d.html")]) == 0
    assert main(["speedscope", path, "-o", str(tmp_path / "s.json")]) == 0


def bomb(path, mib):
    """A gzip file that inflates to ``mib`` MiB of zeros (about 1000 times smaller)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(compressor.compress(zeros))
        f.write(compressor.flush())
    return str(path)


# VmHWM, not ru_maxrss: ru_maxrss keeps the high-water mark of the process that forked the child
# (an xdist worker that ran big tests before), VmHWM belongs to the program exec'd.
PEAK_RSS = """
import sys
from profiler.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as f:
    peak = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0]
sys.stderr.write("maxrss_kib=%d\\n" % peak)
sys.exit(code)
"""


def run_measured(args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS] + args, capture_output=True, text=True, timeout=120, env=env)
    lines = proc.stderr.splitlines()
    peak = int(lines[-1].split("=")[1])
    return proc.returncode, lines[:-1], peak


def test_gzip_bomb_stops_at_the_limit_in_bounded_memory(tmp_path):
    path = bomb(tmp_path / "bomb.pprof", 400)
    code, err, peak_kib = run_measured(["top", path, "--max-size", "16"])
    assert code == 2 and len(err) == 1, err
    assert path in err[0] and "16 MiB" in err[0] and "--max-size" in err[0] and "PROFILER_MAX_SIZE_MIB" in err[0]
    assert peak_kib < 200 * 1024  # the 400 MiB were never held


def test_size_limit_from_the_environment_and_its_bad_values(tmp_path):
    path = bomb(tmp_path / "bomb.pprof", 20)
    code, err, _ = run_measured(["top", path], {"PROFILER_MAX_SIZE_MIB": "4"})
    assert code == 2 and "4 MiB" in err[-1]
    code, err, _ = run_measured(["top", path], {"PROFILER_MAX_SIZE_MIB": "lots"})
    assert "PROFILER_MAX_SIZE_MIB='lots'" in err[0]  # a warning, then the default limit applies
    assert code == 2 and "not a pprof profile" in err[-1]  # 20 MiB of zeros is not a profile


def test_raw_file_over_the_limit(tmp_path, capsys):
    path = tmp_path / "raw.pprof"
    path.write_bytes(minimal_profile().SerializeToString() + b"\x00" * (2 << 20))
    assert main(["top", str(path), "--max-size", "1"]) == 2
    err = one_line_error(capsys, str(path))
    assert "1 MiB" in err and "decompressed" not in err


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31mevil\u202ename\nnext"


def test_top_escapes_control_characters_from_the_file(tmp_path, capsys):
    frame = Frame("/app/\x1b[31mx.py", HOSTILE, 1)
    path = write_profile(tmp_path / "esc.pprof", [((frame,), (("thread name", "t\x1bX"),), {"cpu-time": 5})])
    for argv in (["top", path], ["top", path, "--by", "thread"], ["diff", path, path], ["collapsed", path]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert not any(ch in out for ch in "\x1b\x07\x9b\u202e"), (argv, out)
        assert "owned\\x07" in out or "\\x1bX" in out
    lines = [line for line in main_lines(["top", path], capsys) if "evil" in line]
    assert len(lines) == 1 and "\\x0anext" in lines[0]  # the newline did not start a row


def main_lines(argv, capsys):
    assert main(argv) == 0
    return capsys.readouterr().out.splitlines()


def test_error_messages_escape_file_names(tmp_path, capsys):
    path = tmp_path / "x\x1b[2Jy.pprof"
    path.write_bytes(b"")
    assert main(["top", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "x\\x1b[2Jy.pprof" in err


def test_top_into_a_closed_pipe_exits_quietly(tmp_path):
    path = write_message(tmp_path / "ok.pprof", minimal_profile())
    proc = subprocess.Popen([sys.executable, "-m", "profiler.cli", "top", path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `| head` that has already gone
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_by_an_unknown_label_lists_the_valid_ones(tmp_path):
    path = write_message(tmp_path / "ok.pprof", minimal_profile())
    with pytest.raises(SystemExit) as exc:
        main(["top", path, "--by", "bogus"])
    message = str(exc.value)
    assert "bogus" in message and path in message
    assert "valid: function, line, file, thread, thread name" in message
    with pytest.raises(SystemExit, match="bogus"):
        main(["diff", path, path, "--by", "bogus"])


def test_unwritable_output_is_one_line(tmp_path, capsys):
    path = write_message(tmp_path / "ok.pprof", minimal_profile())
    out = str(tmp_path / "no" / "such" / "dir.html")
    assert main(["flamegraph", path, "-o", out]) == 2
    one_line_error(capsys, out)


def test_page_escapes_a_hostile_file_name_in_its_title(tmp_path):
    path = write_message(tmp_path / "<img src=x onerror=alert(1)>.pprof", minimal_profile())
    out = tmp_path / "t.html"
    assert main(["flamegraph", path, "-o", str(out)]) == 0
    assert "<img" not in open(out, encoding="utf-8").read()


def test_zstd_bomb_stops_at_the_limit(tmp_path, capsys):
    zstandard = pytest.importorskip("zstandard", reason="zstandard not installed")
    path = tmp_path / "bomb.pprof"
    path.write_bytes(zstandard.ZstdCompressor().compress(bytes(40 << 20)))
    assert main(["top", str(path), "--max-size", "4"]) == 2
    err = one_line_error(capsys, str(path))
    assert "4 MiB" in err and "zstd" in err
