import gzip
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
    with pytest.raises(OSError):
        exp.export(make())
    assert os.listdir(tmp_path) == []


def test_enabled_only_with_a_prefix():
    assert FileExporter.is_enabled(ProfilerConfig(output_pprof="x"))
    assert not FileExporter.is_enabled(ProfilerConfig())
