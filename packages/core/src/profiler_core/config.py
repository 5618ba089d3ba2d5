"""Profiler configuration from ``DD_*`` environment variables, with ddtrace's names and defaults.

Constructor arguments override the environment. A value that does not parse or
is out of range is reported with a warning naming the variable, and the default
is used instead: a typo in the environment must never stop the application.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, TypeVar

LOG = logging.getLogger("profiler_core.config")

T = TypeVar("T")

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


@dataclass
class ProfilerConfig:
    """Everything the profiler and its collectors and exporters read from the environment."""

    enabled: bool = False
    env: Optional[str] = None
    service: Optional[str] = None
    version: Optional[str] = None
    tags: Dict[str, str] = field(default_factory=dict)
    upload_interval: float = 60.0
    max_frames: int = 64
    output_pprof: Optional[str] = None
    stack_enabled: bool = True
    lock_enabled: bool = True
    memory_enabled: bool = True
    heap_enabled: bool = True
    exception_enabled: bool = False
    capture_pct: float = 1.0
    max_time_usage_pct: float = 1.0
    ignore_profiler: bool = True
    heap_sample_size: int = 1024 * 1024
    exception_sampling_interval: float = 100.0
    exception_collect_message: bool = False
    api_timeout: float = 10.0
    agent_url: Optional[str] = None
    agent_host: Optional[str] = None
    agent_port: int = 8126
    api_key: Optional[str] = field(default=None, repr=False)
    site: str = "datadoghq.com"
    max_keys: int = 65536

    def replace(self, **changes: Any) -> "ProfilerConfig":
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _positive(v: float) -> bool:
    return v > 0


def _pct(v: float) -> bool:
    return 0 <= v <= 100


# attribute -> (variable, parser, validity check)
_VARIABLES: Dict[str, tuple] = {
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
    defaults = ProfilerConfig()
    values: Dict[str, Any] = {attr: _read(environ, attr, getattr(defaults, attr)) for attr in _VARIABLES}
    tags = parse_tags(environ.get("DD_TAGS", ""))
    tags.update(parse_tags(environ.get("DD_PROFILING_TAGS", "")))
    extra_tags = overrides.pop("tags", None) or {}
    tags.update(extra_tags)
    values["tags"] = tags
    unknown = set(overrides) - set(values)
    if unknown:
        raise TypeError("unknown configuration option(s): %s" % ", ".join(sorted(unknown)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ProfilerConfig(**values)


def describe_variables() -> Dict[str, str]:
    """Variable name -> config attribute, for documentation and the launcher's --help."""
    return {variable: attr for attr, (variable, _p, _v) in _VARIABLES.items()}

