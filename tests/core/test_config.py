import logging
import os
import sys

import pytest

from profiler_core.config import ProfilerConfig, load_config, parse_bool, parse_tags


def test_defaults_match_ddtrace():
    c = load_config({})
    assert c == ProfilerConfig()
    assert c.enabled is False
    assert c.upload_interval == 60.0
    assert c.max_frames == 64
    assert c.capture_pct == 1.0
    assert c.max_time_usage_pct == 1.0
    assert c.stack_enabled and c.lock_enabled and c.memory_enabled and c.heap_enabled
    # on where ddtrace 4.16 runs its exception profiler (3.12+); asked for explicitly on 3.10/3.11
    assert c.exception_enabled is (sys.version_info >= (3, 12))
    assert c.agent_port == 8126
    assert c.output_pprof is None


def test_environment_is_read():
    c = load_config(
        {
            "DD_PROFILING_ENABLED": "true",
            "DD_ENV": "prod",
            "DD_SERVICE": "api",
            "DD_VERSION": "1.2",
            "DD_TAGS": "team:core,region:eu",
            "DD_PROFILING_TAGS": "region:us host_group:a",
            "DD_PROFILING_UPLOAD_INTERVAL": "15.5",
            "DD_PROFILING_MAX_FRAMES": "32",
            "DD_PROFILING_OUTPUT_PPROF": "/tmp/p",
            "DD_PROFILING_LOCK_ENABLED": "0",
            "DD_PROFILING_EXCEPTION_ENABLED": "yes",
            "DD_PROFILING_CAPTURE_PCT": "10",
            "DD_PROFILING_API_TIMEOUT": "2",
            "DD_TRACE_AGENT_URL": "http://agent:8126",
        }
    )
    assert c.enabled and c.env == "prod" and c.service == "api" and c.version == "1.2"
    assert c.tags == {"team": "core", "region": "us", "host_group": "a"}
    assert c.upload_interval == 15.5 and c.max_frames == 32 and c.output_pprof == "/tmp/p"
    assert c.lock_enabled is False and c.exception_enabled is True
    assert c.capture_pct == 10.0 and c.api_timeout == 2.0
    assert c.agent_url == "http://agent:8126"


def test_constructor_arguments_override_environment_and_merge_tags():
    c = load_config({"DD_SERVICE": "env-svc", "DD_TAGS": "a:1,b:2"}, service="arg-svc", env=None, tags={"b": "3"})
    assert c.service == "arg-svc"
    assert c.env is None
    assert c.tags == {"a": "1", "b": "3"}


@pytest.mark.parametrize(
    "variable,raw,attr",
    [
        ("DD_PROFILING_UPLOAD_INTERVAL", "soon", "upload_interval"),
        ("DD_PROFILING_UPLOAD_INTERVAL", "-1", "upload_interval"),
        ("DD_PROFILING_MAX_FRAMES", "1.5", "max_frames"),
        ("DD_PROFILING_MAX_FRAMES", "0", "max_frames"),
        ("DD_PROFILING_ENABLED", "maybe", "enabled"),
        ("DD_PROFILING_CAPTURE_PCT", "150", "capture_pct"),
        ("DD_PROFILING_MAX_TIME_USAGE_PCT", "0", "max_time_usage_pct"),
        ("DD_TRACE_AGENT_PORT", "http", "agent_port"),
    ],
)
def test_bad_values_warn_naming_the_variable_and_fall_back(caplog, variable, raw, attr):
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        c = load_config({variable: raw})
    assert getattr(c, attr) == getattr(ProfilerConfig(), attr)
    assert any(variable in rec.getMessage() and repr(raw) in rec.getMessage() for rec in caplog.records)


def test_one_bad_value_does_not_lose_the_others(caplog):
    c = load_config({"DD_PROFILING_MAX_FRAMES": "lots", "DD_SERVICE": "svc", "DD_PROFILING_UPLOAD_INTERVAL": "5"})
    assert c.max_frames == 64 and c.service == "svc" and c.upload_interval == 5.0


def test_parse_bool():
    for raw in ("1", "true", "TRUE", "yes", "on", " True "):
        assert parse_bool(raw) is True
    for raw in ("0", "false", "False", "no", "off", ""):
        assert parse_bool(raw) is False
    with pytest.raises(ValueError):
        parse_bool("2")


def test_parse_tags_as_ddtrace_and_the_agent(caplog):
    """Commas separate when there is one (a value keeps its spaces: ddtrace sends ``team:a b``),
    else whitespace; a bare key has an empty value; an empty key is dropped with a warning."""
    assert parse_tags("a:1, b:2 c:with:colon, bare") == {"a": "1", "b": "2 c:with:colon", "bare": ""}
    assert parse_tags("a:1 b:2  c:with:colon bare") == {"a": "1", "b": "2", "c": "with:colon", "bare": ""}
    assert parse_tags("team:a b,foo:bar") == {"team": "a b", "foo": "bar"}
    assert not caplog.text
    assert parse_tags("a:1,:orphan") == {"a": "1"}
    assert "orphan" in caplog.text


def test_unknown_override_is_a_type_error():
    with pytest.raises(TypeError):
        load_config({}, no_such_option=1)


def test_api_key_is_not_in_repr():
    assert "secret" not in repr(load_config({"DD_API_KEY": "secret"}))


def _warnings_naming(caplog, variable):
    return [r.getMessage() for r in caplog.records if variable in r.getMessage()]


@pytest.mark.parametrize(
    "variable,raw,attr",
    [
        # Values that used to pass validation and then break the profiler (issue #17, item 3).
        ("DD_PROFILING_UPLOAD_INTERVAL", "1e10", "upload_interval"),  # OverflowError in the scheduler's wait
        ("DD_PROFILING_UPLOAD_INTERVAL", "inf", "upload_interval"),
        ("DD_PROFILING_UPLOAD_INTERVAL", "nan", "upload_interval"),
        ("DD_PROFILING_UPLOAD_INTERVAL", "0.001", "upload_interval"),  # 88 files in 3 s, program 2x slower
        ("DD_PROFILING_API_TIMEOUT", "inf", "api_timeout"),  # every upload failed with a traceback
        ("DD_PROFILING_API_TIMEOUT", "1e9", "api_timeout"),
        ("DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", "1e30", "exception_sampling_interval"),  # ZeroDivisionError
        ("DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", "inf", "exception_sampling_interval"),
        ("DD_PROFILING_HEAP_SAMPLE_SIZE", "99999999999999999999", "heap_sample_size"),
        ("DD_PROFILING_HEAP_SAMPLE_SIZE", "-1", "heap_sample_size"),
        ("DD_PROFILING_MAX_FRAMES", "99999999999", "max_frames"),
        ("DD_PROFILING_MAX_KEYS", "1e3", "max_keys"),
        ("DD_PROFILING_CAPTURE_PCT", "nan", "capture_pct"),
        ("DD_PROFILING_MAX_TIME_USAGE_PCT", "inf", "max_time_usage_pct"),
        ("DD_TRACE_AGENT_URL", "http://[::1]:99999", "agent_url"),  # was retried forever
        ("DD_TRACE_AGENT_URL", "http://garbage host:8126", "agent_url"),
        ("DD_TRACE_AGENT_URL", "ftp://agent", "agent_url"),
        ("DD_TRACE_AGENT_URL", "unix://relative/path", "agent_url"),
        ("DD_TRACE_AGENT_URL", "http://agent:8126/?x=1", "agent_url"),
        ("DD_AGENT_HOST", "garbage host", "agent_host"),
        ("DD_AGENT_HOST", "http://agent", "agent_host"),
        ("DD_AGENT_HOST", "agent:8126", "agent_host"),
        ("DD_TRACE_AGENT_PORT", "99999", "agent_port"),
        ("DD_PROFILING_UPLOAD_COMPRESSION", "brotli", "upload_compression"),  # silently became gzip
        ("DD_SITE", "evil.example@datadoghq.com", "site"),
    ],
)
def test_values_that_would_break_the_profiler_are_refused_with_one_line(caplog, variable, raw, attr):
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        c = load_config({variable: raw})
    assert getattr(c, attr) == getattr(ProfilerConfig(), attr)
    lines = _warnings_naming(caplog, variable)
    assert len(lines) == 1 and "\n" not in lines[0], caplog.text
    assert repr(raw) in lines[0] and "instead" in lines[0]


@pytest.mark.parametrize(
    "variable,raw,attr,value",
    [
        ("DD_PROFILING_UPLOAD_INTERVAL", "1", "upload_interval", 1.0),
        ("DD_PROFILING_UPLOAD_INTERVAL", "86400", "upload_interval", 86400.0),
        ("DD_PROFILING_HEAP_SAMPLE_SIZE", "0", "heap_sample_size", 0),
        ("DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", "1e9", "exception_sampling_interval", 1e9),
        ("DD_TRACE_AGENT_URL", "http://[::1]:8126", "agent_url", "http://[::1]:8126"),
        ("DD_TRACE_AGENT_URL", "https://agent.internal/base", "agent_url", "https://agent.internal/base"),
        ("DD_TRACE_AGENT_URL", "unix:///var/run/datadog/apm.socket", "agent_url", "unix:///var/run/datadog/apm.socket"),
        ("DD_AGENT_HOST", "dd_agent", "agent_host", "dd_agent"),
        ("DD_AGENT_HOST", "10.0.0.7", "agent_host", "10.0.0.7"),
        ("DD_AGENT_HOST", "fe80::1", "agent_host", "fe80::1"),
        ("DD_PROFILING_UPLOAD_COMPRESSION", "ZSTD", "upload_compression", "zstd"),
    ],
)
def test_values_at_the_bounds_are_accepted_silently(caplog, variable, raw, attr, value):
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        c = load_config({variable: raw})
    assert getattr(c, attr) == value
    assert caplog.text == ""


def test_api_timeout_ms_as_ddtrace_wins_over_seconds(caplog):
    assert load_config({"DD_PROFILING_API_TIMEOUT_MS": "2500"}).api_timeout == 2.5
    assert load_config({"DD_PROFILING_API_TIMEOUT_MS": "250", "DD_PROFILING_API_TIMEOUT": "7"}).api_timeout == 0.25
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        c = load_config({"DD_PROFILING_API_TIMEOUT_MS": "inf", "DD_PROFILING_API_TIMEOUT": "7"})
    assert c.api_timeout == 7.0
    assert _warnings_naming(caplog, "DD_PROFILING_API_TIMEOUT_MS")


@pytest.mark.parametrize("raw", ["/", "{tmp}", "{tmp}/sub/"])
def test_an_output_prefix_naming_a_directory_writes_profile_files_in_it(tmp_path, caplog, raw):
    """DD_PROFILING_OUTPUT_PPROF=/ used to write hidden files named '.<pid>.<seq>.pprof' into /."""
    raw = raw.format(tmp=tmp_path)
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        c = load_config({"DD_PROFILING_OUTPUT_PPROF": raw})
    assert c.output_pprof == os.path.join(raw, "profile")
    assert _warnings_naming(caplog, "DD_PROFILING_OUTPUT_PPROF")


def test_agentless_without_a_key_uploads_to_the_agent_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        c = load_config({"DD_PROFILING_AGENTLESS": "true"})
    assert c.agentless is False
    lines = _warnings_naming(caplog, "DD_API_KEY")
    assert len(lines) == 1 and "agent instead" in lines[0]


def test_arguments_are_checked_as_the_variables_are(caplog):
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        c = load_config({}, upload_interval=0.001, agent_url="http://[::1]:99999", max_frames=32)
    assert c.upload_interval == 60.0 and c.agent_url is None and c.max_frames == 32
    assert _warnings_naming(caplog, "upload_interval=") and _warnings_naming(caplog, "agent_url=")


def test_malformed_tags_name_their_variable(caplog):
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        load_config({"DD_TAGS": "a:1 :bare", "DD_PROFILING_TAGS": ":lonely"})
    assert _warnings_naming(caplog, "DD_TAGS") and _warnings_naming(caplog, "DD_PROFILING_TAGS")


def test_a_long_value_is_cut_in_the_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        load_config({"DD_PROFILING_MAX_FRAMES": "x" * 10000})
    assert len(caplog.records[0].getMessage()) < 300


def test_heap_sample_size_defaults_as_ddtrace_from_ram_and_swap(tmp_path):
    from profiler_core.config import default_heap_sample_size

    small = tmp_path / "small"
    small.write_text("MemTotal:        2048000 kB\nMemFree:  1 kB\nSwapTotal:       0 kB\n")
    big = tmp_path / "big"
    big.write_text("MemTotal:       131072000 kB\nSwapTotal:       8192000 kB\n")
    assert default_heap_sample_size(str(small)) == 1024 * 1024  # 2 GB / 65536 is below the 1 MiB floor
    assert default_heap_sample_size(str(big)) == -(-(139264000 * 1024) // 65536)  # ~2.1 MiB
    assert default_heap_sample_size(str(tmp_path / "missing")) == 1024 * 1024
    assert load_config({}).heap_sample_size == default_heap_sample_size()
    assert load_config({"DD_PROFILING_HEAP_SAMPLE_SIZE": "4096"}).heap_sample_size == 4096
    assert load_config({}, heap_sample_size=2048).heap_sample_size == 2048


def test_ddtrace_only_variables_are_accepted_with_one_line_each(caplog):
    """Every DD_PROFILING_* variable ddtrace 4.16 reads that does not apply here is accepted, with
    one warning line naming it and saying why (issue #23); each has a row in the README."""
    from profiler_core.config import DDTRACE_ONLY

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    environ = {name: "true" for name in DDTRACE_ONLY}
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        config = load_config(environ)
    assert config == load_config({})
    lines = [r.getMessage() for r in caplog.records]
    for name in DDTRACE_ONLY:
        assert sum(name + "=" in line for line in lines) == 1, name
        assert "`%s`" % name in readme, name
    assert all("\n" not in line and "does not apply here" in line for line in lines)
