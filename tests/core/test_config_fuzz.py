"""Property: every documented variable set to arbitrary text gives a working configuration, never an
exception; a value that is not used is warned about, in one line naming its variable; a value that is
used lies within the documented bounds (README's configuration table, restated here as the oracle)."""

import logging
import math
import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler_core.config import _VARIABLES, VARIABLES, ProfilerConfig, load_config

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")

DEFAULTS = ProfilerConfig()
ATTRIBUTES = {variable: attr for attr, (variable, _, _) in _VARIABLES.items()}
ATTRIBUTES["DD_PROFILING_API_TIMEOUT_MS"] = "api_timeout"

# variable -> (attribute, kind, low, high), as the README documents them
NUMBERS = {
    "DD_PROFILING_UPLOAD_INTERVAL": ("upload_interval", float, 0.1, 86400),
    "DD_PROFILING_MAX_FRAMES": ("max_frames", int, 1, 16384),
    "DD_PROFILING_HEAP_SAMPLE_SIZE": ("heap_sample_size", int, 0, 2**30),
    "DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL": ("exception_sampling_interval", float, 1, 1e9),
    "DD_PROFILING_CAPTURE_PCT": ("capture_pct", float, 0, 100),
    "DD_PROFILING_MAX_TIME_USAGE_PCT": ("max_time_usage_pct", float, 5e-324, 100),  # above 0
    "DD_PROFILING_API_TIMEOUT": ("api_timeout", float, 0.001, 600),
    "DD_TRACE_AGENT_PORT": ("agent_port", int, 1, 65535),
    "DD_PROFILING_MAX_KEYS": ("max_keys", int, 1, 10_000_000),
}
BOOLEANS = {
    "DD_PROFILING_ENABLED": "enabled",
    "DD_TRACE_DEBUG": "debug",
    "DD_PROFILING_STACK_ENABLED": "stack_enabled",
    "DD_PROFILING_LOCK_ENABLED": "lock_enabled",
    "DD_PROFILING_MEMORY_ENABLED": "memory_enabled",
    "DD_PROFILING_HEAP_ENABLED": "heap_enabled",
    "DD_PROFILING_EXCEPTION_ENABLED": "exception_enabled",
    "DD_PROFILING_EXCEPTION_COLLECT_MESSAGE": "exception_collect_message",
    "DD_PROFILING_ENDPOINT_COLLECTION_ENABLED": "endpoint_collection_enabled",
    "DD_PROFILING_TIMELINE_ENABLED": "timeline_enabled",
    "DD_PROFILING_IGNORE_PROFILER": "ignore_profiler",
    "DD_PROFILING_AGENTLESS": "agentless",
}
TEXTS = {"DD_ENV": "env", "DD_SERVICE": "service", "DD_VERSION": "version", "DD_API_KEY": "api_key"}
TRUE = {"1", "true", "yes", "on", "y", "t"}
FALSE = {"0", "false", "no", "off", "n", "f", ""}
HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$")

HOSTILE = [
    "inf", "-inf", "nan", "1e10", "1e30", "1e-30", "0", "-0", "-1", "0.001", "99999999999999999999", "0x10", "1_000",
    " 5 ", "5s", "", " ", "true", "FALSE", "maybe", "/", "//", ".", "..", "/dev/null", "http://[::1]:99999",
    "http://[::1]:8126", "garbage host", "http://", "https://a:0", "unix://", "unix:///x", "ftp://x", "a@b",
    "evil.com@datadoghq.com", "datadoghq.eu", "localhost:8126", "::1", "zstd", "gzip", "brotli", "k:v,bare",
    "\u00e9", "\u0661\u0662", "\n", "x" * 300, "%s%n", "${HOME}", "'; rm -rf /",
]

values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(HOSTILE),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
)


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def load_capturing(environ):
    handler = Records()
    logger = logging.getLogger("profiler_core.config")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        config = load_config(environ)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return config, [r.getMessage() for r in handler.records], handler.records


def accepted(variable, raw, config):
    """Whether ``config`` shows ``raw`` was used as documented for ``variable`` (the oracle)."""
    if variable in NUMBERS:
        attr, kind, low, high = NUMBERS[variable]
        value = getattr(config, attr)
        try:
            expected = kind(raw) if kind is int else float(raw)
        except ValueError:
            return False
        return math.isfinite(value) and low <= value <= high and value == expected
    if variable in BOOLEANS:
        return getattr(config, BOOLEANS[variable]) is (raw.strip().lower() in TRUE) and raw.strip().lower() in TRUE | FALSE
    if variable in TEXTS:
        return getattr(config, TEXTS[variable]) == (raw.strip() or getattr(DEFAULTS, TEXTS[variable]))
    if variable == "DD_PROFILING_API_TIMEOUT_MS":
        return 0.001 <= config.api_timeout <= 600 and config.api_timeout == float(raw) / 1000
    if variable == "DD_TRACE_AGENT_URL":
        url = config.agent_url
        if url is None:
            return not raw.strip()
        if url.startswith("unix://"):
            return url[7:].startswith("/")
        if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url) or "?" in url or "#" in url:
            return False
        host = url.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        return bool(host) and (host.startswith("[") or HOST.match(host.rsplit(":", 1)[0]) is not None)
    if variable == "DD_AGENT_HOST":
        host = config.agent_host
        return host is None and not raw.strip() or host is not None and (HOST.match(host) is not None or ":" in host and "/" not in host and " " not in host)
    if variable == "DD_SITE":
        return HOST.match(config.site) is not None and "." in config.site and "_" not in config.site
    if variable == "DD_PROFILING_UPLOAD_COMPRESSION":
        return config.upload_compression in ("gzip", "zstd") and config.upload_compression == raw.strip().lower()
    if variable == "DD_PROFILING_OUTPUT_PPROF":
        return config.output_pprof in (raw, None if not raw.strip() else raw)
    if variable in ("DD_TAGS", "DD_PROFILING_TAGS"):
        items = raw.split(",") if "," in raw else raw.split()
        return all(not item.strip().startswith(":") for item in items if item.strip())
    raise AssertionError("no oracle for %s: document and test it" % variable)


def test_every_variable_has_an_oracle_and_a_row_in_the_readme():
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    for variable in VARIABLES:
        assert "`%s`" % variable in readme, variable
        try:
            accepted(variable, "", load_config({}))
        except ValueError:
            pass  # an oracle that finds "" unparsable; AssertionError: a variable nobody wrote an oracle for


@settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({variable: values for variable in VARIABLES}))
def test_arbitrary_values_never_raise_and_every_unused_one_is_warned_by_name(environ):
    # All at once: it completes, and every warning is one line about a variable that was set.
    config, messages, records = load_capturing(environ)
    assert isinstance(config, ProfilerConfig)
    for message, record in zip(messages, records):
        assert "\n" not in message and not record.exc_info
        assert any(variable in message for variable in environ), message
    # One at a time: either it is used as documented, or one warning names it.
    for variable, raw in environ.items():
        if variable == "DD_PROFILING_AGENTLESS":
            raw_env = {variable: raw, "DD_API_KEY": "k"}  # without a key, agentless is refused on purpose
        else:
            raw_env = {variable: raw}
        config, messages, records = load_capturing(raw_env)
        naming = [m for m in messages if variable + "=" in m or variable + " " in m or "in %s " % variable in m]
        if variable == "DD_PROFILING_OUTPUT_PPROF" and naming and "is a directory" in naming[0]:
            assert config.output_pprof == os.path.join(raw, "profile")
            continue
        if not naming:
            assert accepted(variable, raw, config), (variable, raw, config)
        else:
            assert all("\n" not in m for m in naming)
            if any(m.startswith("profiler: invalid %s=" % variable) for m in naming):
                assert len(naming) == 1, naming
                attr = ATTRIBUTES[variable]
                assert getattr(config, attr) == getattr(DEFAULTS, attr), (variable, raw)
