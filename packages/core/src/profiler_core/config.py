"""Profiler configuration from ``DD_*`` environment variables, with ddtrace's names and defaults.

Constructor arguments override the environment. A value that does not parse or
is out of range is reported with a warning naming the variable, and the default
is used instead: a typo in the environment must never stop the application.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Mapping, Optional, Tuple, TypeVar

    T = TypeVar("T")

from profiler_core._log import get_logger

LOG = get_logger("profiler_core.config")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def parse_bool(raw: str) -> bool:
    """ddtrace-style boolean: 1/true/yes/on or 0/false/no/off, case-insensitive."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("not a boolean")


def parse_tags(raw: str, variable: str = "DD_TAGS") -> Dict[str, str]:
    """Parse ``DD_TAGS`` syntax as ddtrace and the Datadog agent do: ``k:v`` pairs separated by
    commas when there is a comma (values may then hold spaces), else by whitespace; a key without
    ``:`` gets an empty value (not sent); an item with an empty key is dropped with a warning naming
    ``variable``."""
    tags: Dict[str, str] = {}
    for item in raw.split(",") if "," in raw else raw.split():
        item = item.strip()
        if not item:
            continue
        key, _sep, value = item.partition(":")
        key, value = key.strip(), value.strip()
        if not key:
            LOG.warning("profiler: ignoring malformed tag %s in %s (expected key:value)", shown(item), variable)
            continue
        tags[key] = value
    return tags


def shown(raw: object, limit: int = 60) -> str:
    """``repr`` of a configuration value for a one-line warning, cut to about ``limit`` characters."""
    text = repr(raw)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def parse_number(raw: str) -> float:
    """A finite float (``inf`` and ``nan`` are refused: no timer or sampling rate can use them)."""
    value = float(raw)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def parse_integer(raw: str) -> int:
    """A base-10 integer."""
    return int(raw.strip(), 10)


def parse_compression(raw: str) -> str:
    """``gzip`` or ``zstd``, case-insensitive."""
    value = raw.strip().lower()
    if value not in ("gzip", "zstd"):
        raise ValueError("not gzip or zstd")
    return value


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def is_host_name(name: str, underscore: bool = False) -> bool:
    """Whether ``name`` is a DNS host name: dot-separated labels of letters, digits and inner hyphens.

    ``underscore`` also allows ``_`` (container and compose service names use it).
    """
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        return False
    allowed = _HOST_CHARS | {"_"} if underscore else _HOST_CHARS
    for label in name.split("."):
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not set(label) <= allowed:
            return False
    return True


def is_ip_literal(text: str) -> bool:
    """Whether ``text`` is an IPv6 address (optionally in brackets, with a zone) or a dotted IPv4 address."""
    import socket

    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    address = text.split("%", 1)[0]
    for family in (socket.AF_INET6, socket.AF_INET):
        try:
            socket.inet_pton(family, address)
        except (OSError, ValueError):
            continue
        return True
    return False


def is_agent_host(host: str) -> bool:
    """A host name (``_`` allowed) or an IP address: what ``DD_AGENT_HOST`` may be."""
    return is_host_name(host, underscore=True) or is_ip_literal(host)


def parse_agent_url(raw: str) -> str:
    """``http://host[:port][/path]``, ``https://...`` or ``unix:///absolute/path``; raises ValueError otherwise.

    Parsed by hand: ``urllib.parse`` (with ``re`` and ``ipaddress``) costs milliseconds at start-up.
    """
    url = raw.strip()
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("spaces or control characters")
    if url.startswith("unix://"):
        if not url[len("unix://") :].startswith("/"):
            raise ValueError("unix socket URL needs an absolute path")
        return url
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError("not http://, https:// or unix://")
    if "?" in rest or "#" in rest:
        raise ValueError("a query or fragment")
    netloc = rest.split("/", 1)[0].rpartition("@")[2]
    if netloc.startswith("["):
        host, bracket, port = netloc[1:].partition("]")
        if not bracket or not is_ip_literal(host) or (port and not port.startswith(":")):
            raise ValueError("no valid IPv6 address")
        port = port[1:]
    else:
        host, _, port = netloc.partition(":")
        if not is_agent_host(host):
            raise ValueError("no valid host")
    if port and not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        raise ValueError("no valid port")
    return url


def parse_agent_host(raw: str) -> str:
    """A host name or IP address (no scheme, port or path)."""
    host = raw.strip()
    if not is_agent_host(host):
        raise ValueError("not a host name or IP address")
    return host


def parse_site(raw: str) -> str:
    """A Datadog site: a DNS host name such as ``datadoghq.eu`` (nothing that could redirect the intake URL)."""
    site = raw.strip().lower()
    if not is_host_name(site) or "." not in site.rstrip("."):
        raise ValueError("not a host name")
    return site.rstrip(".")


def parse_output_prefix(raw: str) -> str:
    """A path prefix for profile files; a directory (existing, or written with a trailing slash) is used as
    ``DIR/profile`` so that files are not hidden dot-files named after nothing (see :func:`load_config`)."""
    if "\x00" in raw:
        raise ValueError("a NUL character")
    return raw


_DEFAULTS: "Dict[str, Any]" = {
    "enabled": False,
    "debug": False,
    "env": None,
    "service": None,
    "version": None,
    "tags": {},
    "upload_interval": 60.0,
    "max_frames": 64,
    "output_pprof": None,
    "stack_enabled": True,
    "lock_enabled": True,
    "memory_enabled": True,
    "heap_enabled": True,
    # As ddtrace 4.16, whose exception profiler runs on 3.12+ only. On 3.10/3.11 ours works through
    # the thread's C-level trace slot, and while that slot is set CPython completes every `await` and
    # `yield from` on its slow path (a StopIteration made and traced each time): an asyncio service
    # ran 1.27x slower. There it is on when asked for (DD_PROFILING_EXCEPTION_ENABLED=true).
    "exception_enabled": sys.version_info >= (3, 12),
    "capture_pct": 1.0,
    "max_time_usage_pct": 1.0,
    "ignore_profiler": True,
    "heap_sample_size": 1024 * 1024,
    "exception_sampling_interval": 100.0,
    "exception_collect_message": False,
    "endpoint_collection_enabled": True,
    "timeline_enabled": True,  # as ddtrace 4.16
    "api_timeout": 10.0,
    "agent_url": None,
    "agent_host": None,
    "agent_port": 8126,
    "api_key": None,
    "site": "datadoghq.com",
    "agentless": False,
    "upload_compression": "gzip",
    "max_keys": 65536,
}
_SECRET = ("api_key",)


class ProfilerConfig:
    """Everything the profiler and its collectors and exporters read from the environment.

    Attributes are those of ``_DEFAULTS`` (``service``, ``upload_interval``,
    ``max_frames``...); the constructor takes any of them by keyword. A plain
    class rather than a dataclass: ``dataclasses`` costs milliseconds to import
    in every profiled process.
    """

    __slots__ = tuple(_DEFAULTS)

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(_DEFAULTS)
        if unknown:
            raise TypeError("unknown configuration option(s): %s" % ", ".join(sorted(unknown)))
        for name, default in _DEFAULTS.items():
            value = values.get(name, default)
            setattr(self, name, dict(value) if isinstance(value, dict) else value)

    def as_dict(self) -> Dict[str, Any]:
        """All options by name."""
        return {name: getattr(self, name) for name in _DEFAULTS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProfilerConfig) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        shown = ("%s=%r" % (k, "***" if k in _SECRET and v else v) for k, v in self.as_dict().items())
        return "ProfilerConfig(%s)" % ", ".join(shown)


def _between(low: float, high: float, low_open: bool = False) -> "Tuple[Callable[[float], bool], str]":
    def check(v: float) -> bool:
        return (low < v if low_open else low <= v) and v <= high

    def number(v: float) -> str:
        return "%d" % v if v == int(v) else "%g" % v

    if low_open:
        return check, "a number above %s, at most %s" % (number(low), number(high))
    return check, "a number from %s to %s" % (number(low), number(high))


# Bounds: a value beyond them cannot work (a timer past threading.TIMEOUT_MAX, a C int overflow, a
# sampling rate whose logarithm is 0) or harms the program (a profile written every millisecond).
UPLOAD_INTERVAL_BOUNDS = (0.1, 86400.0)  # 0.001 wrote 88 files in 3 s and slowed the program 2x
API_TIMEOUT_BOUNDS = (0.001, 600.0)  # below a millisecond every upload would time out
MAX_FRAMES_MAX = 16384  # deeper than any recursion limit in common use; the stack walk itself reads up to 65536
MAX_KEYS_MAX = 10_000_000
HEAP_SAMPLE_SIZE_MAX = 1 << 30
EXCEPTION_SAMPLING_INTERVAL_MAX = 1e9

_ANY = (None, "")

# attribute -> (variable, parser, (validity check, what is expected))
_VARIABLES: "Dict[str, Tuple[str, Callable[[str], Any], Tuple[Optional[Callable[[Any], bool]], str]]]" = {
    "enabled": ("DD_PROFILING_ENABLED", parse_bool, (None, "a boolean")),
    "debug": ("DD_TRACE_DEBUG", parse_bool, (None, "a boolean")),
    "env": ("DD_ENV", str, _ANY),
    "service": ("DD_SERVICE", str, _ANY),
    "version": ("DD_VERSION", str, _ANY),
    "upload_interval": ("DD_PROFILING_UPLOAD_INTERVAL", parse_number, _between(*UPLOAD_INTERVAL_BOUNDS)),
    "max_frames": ("DD_PROFILING_MAX_FRAMES", parse_integer, _between(1, MAX_FRAMES_MAX)),
    "output_pprof": ("DD_PROFILING_OUTPUT_PPROF", parse_output_prefix, (None, "a path prefix")),
    "stack_enabled": ("DD_PROFILING_STACK_ENABLED", parse_bool, (None, "a boolean")),
    "lock_enabled": ("DD_PROFILING_LOCK_ENABLED", parse_bool, (None, "a boolean")),
    "memory_enabled": ("DD_PROFILING_MEMORY_ENABLED", parse_bool, (None, "a boolean")),
    "heap_enabled": ("DD_PROFILING_HEAP_ENABLED", parse_bool, (None, "a boolean")),
    "exception_enabled": ("DD_PROFILING_EXCEPTION_ENABLED", parse_bool, (None, "a boolean")),
    "capture_pct": ("DD_PROFILING_CAPTURE_PCT", parse_number, _between(0, 100)),
    "max_time_usage_pct": ("DD_PROFILING_MAX_TIME_USAGE_PCT", parse_number, _between(0, 100, low_open=True)),
    "ignore_profiler": ("DD_PROFILING_IGNORE_PROFILER", parse_bool, (None, "a boolean")),
    "heap_sample_size": ("DD_PROFILING_HEAP_SAMPLE_SIZE", parse_integer, _between(0, HEAP_SAMPLE_SIZE_MAX)),
    "exception_sampling_interval": (
        "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL",
        parse_number,
        _between(1, EXCEPTION_SAMPLING_INTERVAL_MAX),
    ),
    "exception_collect_message": ("DD_PROFILING_EXCEPTION_COLLECT_MESSAGE", parse_bool, (None, "a boolean")),
    "endpoint_collection_enabled": ("DD_PROFILING_ENDPOINT_COLLECTION_ENABLED", parse_bool, (None, "a boolean")),
    "timeline_enabled": ("DD_PROFILING_TIMELINE_ENABLED", parse_bool, (None, "a boolean")),
    "api_timeout": ("DD_PROFILING_API_TIMEOUT", parse_number, _between(*API_TIMEOUT_BOUNDS)),
    "agent_url": ("DD_TRACE_AGENT_URL", parse_agent_url, (None, "an http://, https:// or unix:/// URL")),
    "agent_host": ("DD_AGENT_HOST", parse_agent_host, (None, "a host name or IP address")),
    "agent_port": ("DD_TRACE_AGENT_PORT", parse_integer, _between(1, 65535)),
    "api_key": ("DD_API_KEY", str, _ANY),
    "site": ("DD_SITE", parse_site, (None, "a host name such as datadoghq.eu")),
    "agentless": ("DD_PROFILING_AGENTLESS", parse_bool, (None, "a boolean")),
    "upload_compression": ("DD_PROFILING_UPLOAD_COMPRESSION", parse_compression, (None, "gzip or zstd")),
    "max_keys": ("DD_PROFILING_MAX_KEYS", parse_integer, _between(1, MAX_KEYS_MAX)),
}

#: ddtrace's name for the upload timeout, in milliseconds; it wins over DD_PROFILING_API_TIMEOUT when set.
API_TIMEOUT_MS = "DD_PROFILING_API_TIMEOUT_MS"

#: Every variable the configuration reads (DD_TAGS and DD_PROFILING_TAGS included).
VARIABLES = tuple(v[0] for v in _VARIABLES.values()) + (API_TIMEOUT_MS, "DD_TAGS", "DD_PROFILING_TAGS")

#: ddtrace 4.16's other DD_PROFILING_* variables, which do not apply here: accepted, and one line
#: says so when one is set (the README's configuration table lists them with the same reasons).
DDTRACE_ONLY: "Dict[str, str]" = {
    "DD_PROFILING_ENABLE_CODE_PROVENANCE": "no code-provenance.json is sent yet; Datadog then tells "
    "libraries from the program's code by file path",
    "DD_PROFILING_ENABLE_ASSERTS": "ddtrace's internal self-checks",
    "DD_PROFILING_SAMPLE_POOL_CAPACITY": "ddtrace's sample object pool; the recorder here is bounded "
    "by DD_PROFILING_MAX_KEYS",
    "DD_PROFILING_STACK_UVLOOP": "uvloop's tasks are asyncio tasks here, always followed",
    "DD_PROFILING_STACK_NATIVE_FRAMES": "native (C) frames are not sampled here",
    "DD_PROFILING_STACK_GC_ENABLED": "garbage collector pauses are not shown as frames here",
    "DD_PROFILING_LOCK_NAME_INSPECT_DIR": "lock names always look for the variable holding the lock "
    "or the Condition/Semaphore/queue around it",
    "DD_PROFILING_LOCK_EXCLUDE_MODULES": "locks are profiled whichever module makes them; a lock "
    "made by threading, queue or asyncio internals is named after the program's code that made them",
    "DD_PROFILING_MEMORY_EVENTS_BUFFER": "the memory collector's bounds are fixed (its dropped "
    "samples are counted)",
    "DD_PROFILING_MEMORY_MEM_DOMAIN_ENABLED": "both of CPython's object and mem allocators are always "
    "sampled; no allocator domain label",
    "DD_PROFILING_NATIVE_HEAP_ENABLED": "native (malloc) heap profiling is not implemented",
    "DD_PROFILING_PYTORCH_ENABLED": "PyTorch profiling is not implemented",
    "DD_PROFILING_PYTORCH_EVENTS_LIMIT": "PyTorch profiling is not implemented",
    "DD_PROFILING_PYTORCH_MAX_FRAMES": "PyTorch profiling is not implemented",
}


def _notice_ddtrace_only(environ: "Mapping[str, str]") -> None:
    for name, reason in DDTRACE_ONLY.items():
        if name in environ:
            LOG.warning("profiler: %s=%s is ddtrace's and does not apply here (%s)", name, shown(environ[name]), reason)


def _warn_rejected(name: str, raw: object, expected: str, used: object) -> None:
    LOG.warning(
        "profiler: invalid %s=%s (expected %s); using %s instead",
        name,
        shown(raw),
        expected,
        "the default" if used is None else shown(used),
    )


def _convert(name: str, raw: Any, parse: "Callable[[str], Any]", rule: tuple, default: Any) -> Any:
    """``raw`` parsed and checked, or ``default`` after one warning naming ``name``."""
    valid, expected = rule
    if parse is str:
        return raw.strip() or default if isinstance(raw, str) else raw
    try:
        if isinstance(raw, str):
            value = parse(raw)
        elif parse is parse_number and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = parse_number(str(float(raw)))
        elif parse is parse_integer and isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif parse is parse_bool:
            value = bool(raw)
        else:
            value = parse(str(raw))
    except (ValueError, OverflowError):
        _warn_rejected(name, raw, expected, default)
        return default
    if valid is not None and not valid(value):
        _warn_rejected(name, raw, expected, default)
        return default
    return value


def _read(environ: Mapping[str, str], attr: str, default: T) -> T:
    variable, parse, rule = _VARIABLES[attr]
    raw = environ.get(variable)
    if raw is None:
        return default
    return _convert(variable, raw, parse, rule, default)


def _api_timeout_ms(environ: "Mapping[str, str]", seconds: float) -> float:
    raw = environ.get(API_TIMEOUT_MS)
    if raw is None:
        return seconds
    check, expected = _between(API_TIMEOUT_BOUNDS[0] * 1000, API_TIMEOUT_BOUNDS[1] * 1000)
    ms = _convert(API_TIMEOUT_MS, raw, parse_number, (check, expected + " (milliseconds)"), None)
    return seconds if ms is None else ms / 1000.0


def _output_prefix(prefix: Optional[str], name: str) -> Optional[str]:
    """A prefix naming a directory is made ``DIR/profile`` (``/`` would have written hidden files into ``/``)."""
    if not prefix:
        return prefix
    if prefix.endswith(("/", os.sep)) or os.path.isdir(prefix):
        used = os.path.join(prefix, "profile")
        LOG.warning("profiler: %s=%s is a directory; writing %s.<pid>.<seq>.pprof", name, shown(prefix), used)
        return used
    return prefix


HEAP_SAMPLE_SIZE_FLOOR = 1024 * 1024
#: ddtrace's heap tracker holds at most this many samples: its default sample size spreads them over all memory.
HEAP_MAX_SAMPLES = 2**16


def default_heap_sample_size(meminfo: str = "/proc/meminfo") -> int:
    """ddtrace's default ``DD_PROFILING_HEAP_SAMPLE_SIZE``: max((RAM + swap) / 65536, 1 MiB).

    1 MiB where the memory size cannot be read.
    """
    total = 0
    try:
        with open(meminfo, "rb") as f:
            for line in f:
                if line.startswith((b"MemTotal:", b"SwapTotal:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return HEAP_SAMPLE_SIZE_FLOOR
    return max(-(-total // HEAP_MAX_SAMPLES), HEAP_SAMPLE_SIZE_FLOOR)


def load_config(environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> ProfilerConfig:
    """Build a :class:`ProfilerConfig` from ``environ`` (default ``os.environ``), then apply ``overrides``.

    Overrides with value ``None`` are ignored, so a facade can pass its keyword
    arguments straight through; the others are checked as the variables are. ``tags``
    overrides are merged over ``DD_TAGS`` and ``DD_PROFILING_TAGS`` rather than
    replacing them. Every rejected value is reported by one warning line naming the
    variable (or argument) and what is used instead; nothing here raises for a value.
    """
    if environ is None:
        environ = os.environ
    values: "Dict[str, Any]" = {attr: _read(environ, attr, _DEFAULTS[attr]) for attr in _VARIABLES}
    _notice_ddtrace_only(environ)
    values["api_timeout"] = _api_timeout_ms(environ, values["api_timeout"])
    if _VARIABLES["heap_sample_size"][0] not in environ and overrides.get("heap_sample_size") is None:
        values["heap_sample_size"] = default_heap_sample_size()
    values["output_pprof"] = _output_prefix(values["output_pprof"], "DD_PROFILING_OUTPUT_PPROF")
    tags = parse_tags(environ.get("DD_TAGS", ""), "DD_TAGS")
    tags.update(parse_tags(environ.get("DD_PROFILING_TAGS", ""), "DD_PROFILING_TAGS"))
    extra_tags = overrides.pop("tags", None) or {}
    tags.update(extra_tags)
    values["tags"] = tags
    unknown = set(overrides) - set(_DEFAULTS)
    if unknown:
        raise TypeError("unknown configuration option(s): %s" % ", ".join(sorted(unknown)))
    for attr, value in overrides.items():
        if value is None:
            continue
        if attr in _VARIABLES:
            _, parse, rule = _VARIABLES[attr]
            value = _convert(attr, value, parse, rule, values[attr])
            if attr == "output_pprof":
                value = _output_prefix(value, attr)
        values[attr] = value
    if values["agentless"] and not values["api_key"]:
        LOG.warning("profiler: DD_PROFILING_AGENTLESS is true but DD_API_KEY is not; uploading to the agent instead")
        values["agentless"] = False
    return ProfilerConfig(**values)
