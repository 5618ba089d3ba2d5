"""Profiler configuration from ``DD_*`` environment variables, with ddtrace's names and defaults.

Constructor arguments override the environment. A value that does not parse or
is out of range is reported with a warning naming the variable, and the default
is used instead: a typo in the environment must never stop the application.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing costs milliseconds to import in every profiled process
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Optional, TypeVar

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


def parse_tags(raw: str) -> Dict[str, str]:
    """Parse ``DD_TAGS`` syntax: ``k:v`` pairs separated by commas or spaces; a bare key is dropped with a warning."""
    tags: Dict[str, str] = {}
    for item in raw.replace(",", " ").split():
        key, sep, value = item.partition(":")
        if not sep or not key:
            LOG.warning("ignoring malformed tag %r (expected key:value)", item)
            continue
        tags[key] = value
    return tags


_DEFAULTS: "Dict[str, Any]" = {
    "enabled": False,
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
    "exception_enabled": False,
    "capture_pct": 1.0,
    "max_time_usage_pct": 1.0,
    "ignore_profiler": True,
    "heap_sample_size": 1024 * 1024,
    "exception_sampling_interval": 100.0,
    "exception_collect_message": False,
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


def _positive(v: float) -> bool:
    return v > 0


def _pct(v: float) -> bool:
    return 0 <= v <= 100


# attribute -> (variable, parser, validity check)
_VARIABLES: "Dict[str, tuple]" = {
    "enabled": ("DD_PROFILING_ENABLED", parse_bool, None),
    "env": ("DD_ENV", str, None),
    "service": ("DD_SERVICE", str, None),
    "version": ("DD_VERSION", str, None),
    "upload_interval": ("DD_PROFILING_UPLOAD_INTERVAL", float, _positive),
    "max_frames": ("DD_PROFILING_MAX_FRAMES", int, _positive),
    "output_pprof": ("DD_PROFILING_OUTPUT_PPROF", str, None),
    "stack_enabled": ("DD_PROFILING_STACK_ENABLED", parse_bool, None),
    "lock_enabled": ("DD_PROFILING_LOCK_ENABLED", parse_bool, None),
    "memory_enabled": ("DD_PROFILING_MEMORY_ENABLED", parse_bool, None),
    "heap_enabled": ("DD_PROFILING_HEAP_ENABLED", parse_bool, None),
    "exception_enabled": ("DD_PROFILING_EXCEPTION_ENABLED", parse_bool, None),
    "capture_pct": ("DD_PROFILING_CAPTURE_PCT", float, _pct),
    "max_time_usage_pct": ("DD_PROFILING_MAX_TIME_USAGE_PCT", float, lambda v: 0 < v <= 100),
    "ignore_profiler": ("DD_PROFILING_IGNORE_PROFILER", parse_bool, None),
    "heap_sample_size": ("DD_PROFILING_HEAP_SAMPLE_SIZE", int, lambda v: v >= 0),
    "exception_sampling_interval": ("DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", float, lambda v: v >= 1),
    "exception_collect_message": ("DD_PROFILING_EXCEPTION_COLLECT_MESSAGE", parse_bool, None),
    "api_timeout": ("DD_PROFILING_API_TIMEOUT", float, _positive),
    "agent_url": ("DD_TRACE_AGENT_URL", str, None),
    "agent_host": ("DD_AGENT_HOST", str, None),
    "agent_port": ("DD_TRACE_AGENT_PORT", int, lambda v: 0 < v < 65536),
    "api_key": ("DD_API_KEY", str, None),
    "site": ("DD_SITE", str, None),
    "agentless": ("DD_PROFILING_AGENTLESS", parse_bool, None),
    "upload_compression": ("DD_PROFILING_UPLOAD_COMPRESSION", str, None),
    "max_keys": ("DD_PROFILING_MAX_KEYS", int, _positive),
}


def _read(environ: Mapping[str, str], attr: str, default: T) -> T:
    variable, parse, valid = _VARIABLES[attr]
    raw = environ.get(variable)
    if raw is None:
        return default
    if parse is str:
        return raw.strip() or default  # type: ignore[return-value]
    try:
        value = parse(raw)
    except ValueError:
        LOG.warning("invalid value %r for %s; using the default %r", raw, variable, default)
        return default
    if valid is not None and not valid(value):
        LOG.warning("out-of-range value %r for %s; using the default %r", raw, variable, default)
        return default
    return value


def load_config(environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> ProfilerConfig:
    """Build a :class:`ProfilerConfig` from ``environ`` (default ``os.environ``), then apply ``overrides``.

    Overrides with value ``None`` are ignored, so a facade can pass its keyword
    arguments straight through. ``tags`` overrides are merged over
    ``DD_TAGS`` and ``DD_PROFILING_TAGS`` rather than replacing them.
    """
    if environ is None:
        environ = os.environ
    values: "Dict[str, Any]" = {attr: _read(environ, attr, _DEFAULTS[attr]) for attr in _VARIABLES}
    tags = parse_tags(environ.get("DD_TAGS", ""))
    tags.update(parse_tags(environ.get("DD_PROFILING_TAGS", "")))
    extra_tags = overrides.pop("tags", None) or {}
    tags.update(extra_tags)
    values["tags"] = tags
    unknown = set(overrides) - set(_DEFAULTS)
    if unknown:
        raise TypeError("unknown configuration option(s): %s" % ", ".join(sorted(unknown)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ProfilerConfig(**values)
