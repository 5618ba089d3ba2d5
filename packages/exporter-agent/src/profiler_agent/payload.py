"""The upload body: ``event.json`` and the compressed pprof, as ddtrace's intake format version 4."""

from __future__ import annotations

import os
import sys
import time
import zlib

from profiler_agent import event_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

    from profiler_core.config import ProfilerConfig
    from profiler_core.interfaces import ExportedProfile

PROFILE_ATTACHMENT = "profile.pprof"  # as ddtrace 4.16 (libdatadog) names it
FAMILY = "python"
FORMAT_VERSION = "4"


def rfc3339(ns: int) -> str:
    """UTC time of ``ns`` nanoseconds since the epoch, to the nanosecond, as
    ``2026-11-25T01:02:03.123456789Z`` (ddtrace's format: a short profile keeps its length)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%09dZ" % fraction


# platform.python_implementation()'s names (the platform module costs milliseconds to import).
_IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy", "ironpython": "IronPython", "jython": "Jython"}


def libc_name() -> str:
    """``glibc`` where the C library says it is glibc, else what ``platform.libc_ver`` finds."""
    try:
        found = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        found = None
    if found:
        return found.split()[0]
    import platform  # not glibc: rare, and on the thread that builds the exporter

    return platform.libc_ver()[0]


def runtime_platform() -> str:
    """The platform as ddtrace's tag spells it, a target triple: ``x86_64-unknown-linux-gnu``."""
    machine = os.uname().machine.lower() or "unknown"
    if machine in ("amd64", "x64"):
        machine = "x86_64"
    elif machine == "arm64":
        machine = "aarch64"
    if sys.platform.startswith("linux"):
        libc = libc_name()
        return "%s-unknown-linux-%s" % (machine, "gnu" if libc == "glibc" or not libc else "musl")
    if sys.platform == "darwin":
        return "%s-apple-darwin" % machine
    if sys.platform == "win32":
        return "%s-pc-windows-msvc" % machine
    return "%s-unknown-%s" % (machine, sys.platform)


def runtime_tags(runtime_id: str, profiler_version: str) -> "Dict[str, str]":
    """The tags every profile of this process carries, whatever the user configured. No ``host``:
    the agent adds it (ddtrace stopped sending one; two would disagree in a container)."""
    return {
        "language": "python",
        "runtime": _IMPLEMENTATIONS.get(sys.implementation.name, sys.implementation.name),
        "runtime_version": sys.version.split()[0],  # as platform.python_version() reads it
        "runtime-id": runtime_id,
        "profiler_version": profiler_version,
        "process_id": str(os.getpid()),
        "runtime_platform": runtime_platform(),
    }


def profiler_config_tag(config: "ProfilerConfig") -> str:
    """ddtrace's ``profiler_config`` tag: the collectors on, the lock capture rate and the frame
    limit (``stack_v2_lock_mem_heap_exception_CAP1.0_MAXF64``), with ddtrace's words for them."""
    features = []
    for enabled, word in (
        (config.stack_enabled, "stack_v2"),
        (config.lock_enabled, "lock"),
        (config.memory_enabled, "mem"),
        (config.memory_enabled and config.heap_enabled and config.heap_sample_size > 0, "heap"),
        (config.exception_enabled, "exception"),
    ):
        if enabled:
            features.append(word)
    features.append("CAP" + str(float(config.capture_pct)))
    features.append("MAXF" + str(config.max_frames))
    return "_".join(features)


def settings_info(config: "ProfilerConfig") -> "Dict[str, object]":
    """``info.profiler.settings`` of the event, with ddtrace's keys for the settings that mean
    the same here; secrets are never among them."""
    return {
        "enabled": True,
        "agentless": bool(config.agentless),
        "output_pprof": config.output_pprof,
        "upload_interval": float(config.upload_interval),
        "capture_pct": float(config.capture_pct),
        "max_frames": config.max_frames,
        "ignore_profiler": bool(config.ignore_profiler),
        "max_time_usage_pct": float(config.max_time_usage_pct),
        "api_timeout_ms": int(round(config.api_timeout * 1000)),
        "stack.enabled": bool(config.stack_enabled),
        "lock.enabled": bool(config.lock_enabled),
        "memory.enabled": bool(config.memory_enabled),
        "heap.enabled": bool(config.heap_enabled),
        "heap._sample_size": config.heap_sample_size,
        "exception.enabled": bool(config.exception_enabled),
        "exception.sampling_interval": config.exception_sampling_interval,
        "exception.collect_message": bool(config.exception_collect_message),
    }


_TAG_VALUE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789/._-")


def _tag_value(value: str) -> str:
    # The agent's normalization of a tag value, as ddtrace applies it to process tags.
    value = value[:100].lower()
    value = "".join(c if c in _TAG_VALUE_CHARS or c.isalnum() else "_" for c in value)
    while "__" in value:
        value = value.replace("__", "_")
    return value.strip("_")


def _entrypoint() -> "Tuple[str, str]":
    # The program's name and whether it was run as a script or with -m.
    argv = sys.argv
    if argv and argv[0] == "-m":
        orig = getattr(sys, "orig_argv", [])
        for i, arg in enumerate(orig[:-1]):
            if arg == "-m":
                return orig[i + 1], "module"
        return "__main__", "module"
    name = os.path.splitext(os.path.basename(argv[0]))[0] if argv and argv[0] else ""
    return name, "script"


def process_tags(service_from_user: bool) -> str:
    """ddtrace's ``process_tags`` of the event: where the program runs from and what it is
    (``entrypoint.basedir:app,entrypoint.name:main,entrypoint.type:script,...``), sorted."""
    name, kind = _entrypoint()
    script = sys.argv[0] if sys.argv and kind == "script" else ""
    values = {
        "entrypoint.workdir": os.path.basename(os.getcwd()),
        "entrypoint.basedir": os.path.basename(os.path.dirname(os.path.realpath(script))) if script else "",
        "entrypoint.name": name,
        "entrypoint.type": kind,
        "svc.user" if service_from_user else "svc.auto": "true" if service_from_user else name,
    }
    tags = []
    for key, value in values.items():
        if value and value not in ("/", "\\", "bin"):
            value = _tag_value(value)
            if value:
                tags.append("%s:%s" % (key, value))
    return ",".join(sorted(tags))


def tags_string(tags: "Dict[str, str]") -> str:
    """``k:v`` pairs joined by commas, commas in values replaced (they would split the tag)."""
    return ",".join("%s:%s" % (k, str(v).replace(",", "_")) for k, v in tags.items() if v is not None and v != "")


def compress(pprof: bytes, codec: str) -> bytes:
    """``pprof`` compressed with ``gzip`` or ``zstd``."""
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(pprof)
    # What gzip.compress(pprof, 6, mtime=0) makes, through zlib (gzip costs a millisecond to import).
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(pprof) + compressor.flush()


def pick_codec(wanted: str) -> str:
    """``zstd`` when asked for and importable, else ``gzip``."""
    if wanted == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            return "gzip"
        return "zstd"
    return "gzip"


def build_parts(
    profile: "ExportedProfile",
    tags: "Dict[str, str]",
    codec: str = "gzip",
    process: "Optional[str]" = None,
    settings: "Optional[Dict[str, object]]" = None,
) -> "List[Tuple[str, str, bytes, str]]":
    """The upload's multipart parts as (field, file name, content, content type): ``event``
    (event.json, with ``process`` tags and ``settings`` as ``info.profiler.settings`` when given),
    then the compressed profile."""
    event: "Dict[str, object]" = {
        "attachments": [PROFILE_ATTACHMENT],
        "tags_profiler": tags_string(tags),
        "start": rfc3339(profile.start_ns),
        "end": rfc3339(profile.end_ns),
        "family": FAMILY,
        "version": FORMAT_VERSION,
        "endpoint_counts": dict(profile.endpoint_counts) or None,
    }
    if process:
        event["process_tags"] = process
    if settings is not None:
        event["info"] = {"profiler": {"settings": settings}}
    return [
        ("event", "event.json", event_json.dumps(event).encode(), "application/json"),
        (PROFILE_ATTACHMENT, PROFILE_ATTACHMENT, compress(profile.pprof, codec), "application/octet-stream"),
    ]
