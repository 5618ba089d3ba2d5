"""Write each profile to disk as ``<prefix>.<pid>.<seq>.pprof`` (gzip-compressed pprof)."""

from __future__ import annotations

import gzip
import os

from profiler_core._log import get_logger
from profiler_core.config import ProfilerConfig
from profiler_core.interfaces import ExportedProfile, Exporter

LOG = get_logger("profiler_core.file_exporter")


def profile_path(prefix: str, pid: int, seq: int) -> str:
    """Where the file exporter writes profile ``seq`` of process ``pid``."""
    return "%s.%d.%d.pprof" % (prefix, pid, seq)


class FileExporter(Exporter):
    """Writes profiles under the ``DD_PROFILING_OUTPUT_PPROF`` prefix, atomically (temporary file, then rename).

    Readers never see a partial file. The prefix's directory is created if missing.
    """

    name = "file"

    def __init__(self, config: ProfilerConfig) -> None:
        super().__init__(config)
        if not config.output_pprof:
            raise ValueError("FileExporter needs output_pprof (DD_PROFILING_OUTPUT_PPROF)")
        self.prefix = os.path.abspath(config.output_pprof)

    @classmethod
    def is_enabled(cls, config: ProfilerConfig) -> bool:
        """Enabled when an output prefix is configured."""
        return bool(config.output_pprof)

    def export(self, profile: ExportedProfile) -> None:
        """Write ``profile`` to ``prefix.<pid>.<seq>.pprof``."""
        path = profile_path(self.prefix, profile.pid, profile.seq)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        tmp = "%s.tmp.%d" % (path, os.getpid())
        try:
            with open(tmp, "wb") as f:
                # mtime=0 keeps the bytes a pure function of the profile.
                f.write(gzip.compress(profile.pprof, compresslevel=6, mtime=0))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        LOG.debug("wrote %s", path)
