import gzip
import logging
import os

import pytest

from profiler_core.config import ProfilerConfig
from profiler_core.file_exporter import FileExporter, profile_path
from profiler_core.interfaces import ExportedProfile


def make(pprof=b"\x08\x01", seq=0, pid=1234):
    return ExportedProfile(pprof=pprof, start_ns=1, end_ns=2, seq=seq, pid=pid)


def test_writes_gzip_pprof_named_prefix_pid_seq(tmp_path):
    prefix = str(tmp_path / "sub" / "app")
    exp = FileExporter(ProfilerConfig(output_pprof=prefix))
    exp.export(make(b"abc", seq=0))
    exp.export(make(b"def", seq=1))
    assert sorted(os.listdir(tmp_path / "sub")) == ["app.1234.0.pprof", "app.1234.1.pprof"]
    with open(profile_path(prefix, 1234, 1), "rb") as f:
        assert gzip.decompress(f.read()) == b"def"


def test_no_temporary_file_is_left_behind(tmp_path):
    exp = FileExporter(ProfilerConfig(output_pprof=str(tmp_path / "p")))
    exp.export(make())
    assert os.listdir(tmp_path) == ["p.1234.0.pprof"]


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    exp = FileExporter(ProfilerConfig(output_pprof=str(tmp_path / "p")))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    exp.export(make())  # dropped and counted, never raised (the scheduler would print a traceback)
    assert os.listdir(tmp_path) == []
    assert exp.stats()["errors"] == 1 and exp.stats()["written"] == 0


def test_unwritable_output_is_one_rate_limited_line_naming_the_variable(tmp_path, caplog):
    """A prefix under a regular file (unwritable even as root): a warning at start, then one line naming
    DD_PROFILING_OUTPUT_PPROF for the first failed period and none for the next ones; no traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    prefix = str(blocker / "profiles" / "p")
    with caplog.at_level(logging.WARNING, logger="profiler_core.file_exporter"):
        exp = FileExporter(ProfilerConfig(output_pprof=prefix))
        assert "not a directory" in caplog.text and "DD_PROFILING_OUTPUT_PPROF" in caplog.text
        caplog.clear()
        for seq in range(5):
            exp.export(make(seq=seq))
    lines = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    assert "DD_PROFILING_OUTPUT_PPROF" in lines[0].getMessage() and "\n" not in lines[0].getMessage()
    assert not lines[0].exc_info
    assert exp.stats() == {"written": 0.0, "errors": 5.0, "dropped": 5.0}


def test_enabled_only_with_a_prefix():
    assert FileExporter.is_enabled(ProfilerConfig(output_pprof="x"))
    assert not FileExporter.is_enabled(ProfilerConfig())
