"""Write each profile to disk as ``<prefix>.<pid>.<seq>.pprof`` (gzip-compressed pprof)."""

from __future__ import annotations

import os

from profiler_core._log import RateLimit, get_logger
from profiler_core.config import ProfilerConfig
from profiler_core.interfaces import ExportedProfile, Exporter
from profiler_core.pprof import gzip_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict

LOG = get_logger("profiler_core.file_exporter")


def profile_path(prefix: str, pid: int, seq: int) -> str:
    """Where the file exporter writes profile ``seq`` of process ``pid``."""
    return "%s.%d.%d.pprof" % (prefix, pid, seq)


class FileExporter(Exporter):
    """Writes profiles under the ``DD_PROFILING_OUTPUT_PPROF`` prefix, atomically (temporary file, then rename).

    Readers never see a partial file. The prefix's directory is created if missing.
    A profile that cannot be written is dropped and counted (``stats()``) with one
    warning line naming the variable, repeated at most once a minute; an output
    directory that cannot be written is reported at start.
    """

    name = "file"

    def __init__(self, config: ProfilerConfig) -> None:
        super().__init__(config)
        if not config.output_pprof:
            raise ValueError("FileExporter needs output_pprof (DD_PROFILING_OUTPUT_PPROF)")
        self.prefix = os.path.abspath(config.output_pprof)
        self.written = 0
        self.errors = 0
        self._limit = RateLimit()
        self._check_directory()

    @classmethod
    def is_enabled(cls, config: ProfilerConfig) -> bool:
        """Enabled when an output prefix is configured."""
        return bool(config.output_pprof)

    def _check_directory(self) -> None:
        existing = os.path.dirname(self.prefix)
        while not os.path.exists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            problem = "%s is not a directory" % existing
        elif not os.access(existing, os.W_OK | os.X_OK):
            problem = "%s is not writable" % existing
        else:
            return
        LOG.warning(
            "profiler: DD_PROFILING_OUTPUT_PPROF=%r: %s; profiles will be dropped until it can be written",
            self.config.output_pprof,
            problem,
        )

    def export(self, profile: ExportedProfile) -> None:
        """Write ``profile`` to ``prefix.<pid>.<seq>.pprof``; on failure drop it with a rate-limited warning."""
        path = profile_path(self.prefix, profile.pid, profile.seq)
        try:
            self._write(path, profile)
        except OSError as exc:
            self.errors += 1
            LOG.limited(
                self._limit,
                "write",
                "profiler: cannot write %s (DD_PROFILING_OUTPUT_PPROF=%r): %s; profile dropped (%d so far)",
                path,
                self.config.output_pprof,
                exc.strerror or exc,
                self.errors,
            )
            return
        self.written += 1
        LOG.debug("wrote %s", path)

    def _write(self, path: str, profile: ExportedProfile) -> None:
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        tmp = "%s.tmp.%d" % (path, os.getpid())
        try:
            with open(tmp, "wb") as f:
                f.write(gzip_bytes(profile.pprof))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def stats(self) -> "Dict[str, float]":
        """Profiles written, and profiles dropped because they could not be written."""
        return {"written": float(self.written), "errors": float(self.errors), "dropped": float(self.errors)}
