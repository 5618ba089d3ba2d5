"""The upload body: ``event.json`` and the compressed pprof, as ddtrace's intake format version 4."""

from __future__ import annotations

import gzip
import json
import os
import platform
import socket
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Tuple

    from profiler_core.interfaces import ExportedProfile

PROFILE_ATTACHMENT = "auto.pprof"
FAMILY = "python"
FORMAT_VERSION = "4"


def rfc3339(ns: int) -> str:
    """UTC time of ``ns`` nanoseconds since the epoch, as ``2026-11-25T01:02:03Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))


def runtime_tags(runtime_id: str, profiler_version: str) -> "Dict[str, str]":
    """The tags every profile of this process carries, whatever the user configured."""
    return {
        "host": socket.gethostname(),
        "language": "python",
        "runtime": platform.python_implementation(),
        "runtime_version": platform.python_version(),
        "runtime-id": runtime_id,
        "profiler_version": profiler_version,
        "process_id": str(os.getpid()),
        "runtime_platform": "%s-%s" % (sys.platform, platform.machine()),
    }


def tags_string(tags: "Dict[str, str]") -> str:
    """``k:v`` pairs joined by commas, commas in values replaced (they would split the tag)."""
    return ",".join("%s:%s" % (k, str(v).replace(",", "_")) for k, v in tags.items() if v is not None and v != "")


def compress(pprof: bytes, codec: str) -> bytes:
    """``pprof`` compressed with ``gzip`` or ``zstd``."""
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(pprof)
    return gzip.compress(pprof, compresslevel=6, mtime=0)


def pick_codec(wanted: str) -> str:
    """``zstd`` when asked for and importable, else ``gzip``."""
    if wanted == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            return "gzip"
        return "zstd"
    return "gzip"


def build_files(profile: "ExportedProfile", tags: "Dict[str, str]", codec: str = "gzip") -> "Dict[str, Tuple[str, bytes, str]]":
    """The multipart parts for requests' ``files=``: ``event`` (event.json) and the profile attachment."""
    event = {
        "attachments": [PROFILE_ATTACHMENT],
        "tags_profiler": tags_string(tags),
        "start": rfc3339(profile.start_ns),
        "end": rfc3339(profile.end_ns),
        "family": FAMILY,
        "version": FORMAT_VERSION,
        "endpoint_counts": dict(profile.endpoint_counts),
    }
    return {
        "event": ("event.json", json.dumps(event).encode(), "application/json"),
        PROFILE_ATTACHMENT: (PROFILE_ATTACHMENT, compress(profile.pprof, codec), "application/octet-stream"),
    }
