import logging

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
    assert c.exception_enabled is False
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


def test_parse_tags_skips_malformed_entries(caplog):
    assert parse_tags("a:1, b:2 c:with:colon bare") == {"a": "1", "b": "2", "c": "with:colon"}
    assert "bare" in caplog.text


def test_unknown_override_is_a_type_error():
    with pytest.raises(TypeError):
        load_config({}, no_such_option=1)


def test_api_key_is_not_in_repr():
    assert "secret" not in repr(load_config({"DD_API_KEY": "secret"}))
