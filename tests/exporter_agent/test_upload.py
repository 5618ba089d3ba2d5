import logging
import os
import sys
import time

import pytest

from agent_server import FakeAgent
from profiler_agent.container import container_id
from profiler_agent.endpoint import resolve
import profiler_agent.exporter as exporter_module
from profiler_agent.exporter import AgentExporter
from profiler_core.config import ProfilerConfig, load_config
from profiler_core.events import Frame
from profiler_core.interfaces import ExportedProfile
from profiler_core.pprof import encode_profile
from profiler_core.recorder import Recorder
from waiting import wait_until


def make_profile(seq=0, tags=None):
    r = Recorder()
    r.push((Frame("/app/x.py", "work", 3),), (("thread name", "MainThread"),), {"cpu-time": 1234 + seq})
    snap = r.flush()
    return ExportedProfile(
        pprof=encode_profile(snap),
        start_ns=1_764_000_000_000_000_000,
        end_ns=1_764_000_060_000_000_000,
        seq=seq,
        pid=os.getpid(),
        tags=tags if tags is not None else {"service": "svc", "env": "prod", "version": "1.2", "team": "core"},
    )


def exporter_for(url, **kw):
    config = ProfilerConfig(agent_url=url, upload_interval=kw.pop("upload_interval", 5.0), api_timeout=kw.pop("api_timeout", 2.0))
    return AgentExporter(config, retry_base=0.01, **kw)


def test_upload_is_wire_compatible(agent):
    exp = exporter_for(agent.url)
    exp.export(make_profile())
    assert agent.wait_for(lambda a: len(a.uploads) == 1)
    exp.stop(2)
    up = agent.uploads[0]
    assert up.path == "/profiling/v1/input"
    assert up.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert up.headers["DD-EVP-ORIGIN"] and up.headers["DD-EVP-ORIGIN-VERSION"]
    assert up.headers["User-Agent"].startswith("profiler-python/")
    filename, content_type, _ = up.parts["event"]
    assert (filename, content_type) == ("event.json", "application/json")
    event = up.event
    assert event["version"] == "4" and event["family"] == "python"
    assert event["attachments"] == ["profile.pprof"]
    assert event["start"] == "2025-11-24T16:00:00.000000000Z" and event["end"] == "2025-11-24T16:01:00.000000000Z"
    assert event["endpoint_counts"] is None
    assert "entrypoint.type:" in event["process_tags"]
    settings = event["info"]["profiler"]["settings"]
    assert settings["max_frames"] == 64 and settings["api_timeout_ms"] == 2000 and "api_key" not in str(settings)
    tags = up.tags
    for key in ("service", "env", "version", "language", "runtime", "runtime_version", "runtime-id", "profiler_version",
                "process_id", "profiler_config", "runtime_platform"):
        assert tags.get(key), key
    assert "host" not in tags  # the agent adds it
    assert tags["profiler_config"].endswith("_CAP1.0_MAXF64")
    assert len(tags["runtime-id"]) == 32 and int(tags["runtime-id"], 16) >= 0
    assert tags["service"] == "svc" and tags["env"] == "prod" and tags["version"] == "1.2" and tags["team"] == "core"
    assert tags["language"] == "python" and tags["runtime"] == "CPython" and tags["process_id"] == str(os.getpid())
    assert tags["runtime_version"] == "%d.%d.%d" % sys.version_info[:3]
    assert up.parts["profile.pprof"][0] == "profile.pprof"
    profile = up.pprof()
    assert [profile.string_table[t.type] for t in profile.sample_type] == ["cpu-time"]
    assert profile.sample[0].value[0] == 1234


def test_zstd_when_asked_and_installed(agent):
    pytest.importorskip("zstandard")
    config = ProfilerConfig(agent_url=agent.url, upload_compression="zstd")
    exp = AgentExporter(config)
    exp.export(make_profile())
    assert agent.wait_for(lambda a: len(a.uploads) == 1)
    exp.stop(2)
    assert agent.uploads[0].parts["profile.pprof"][2][:4] == b"\x28\xb5\x2f\xfd"
    assert agent.uploads[0].pprof().sample[0].value[0] == 1234


def test_500_then_200_is_retried_and_arrives_once():
    agent = FakeAgent(statuses=[500, 503])
    try:
        exp = exporter_for(agent.url)
        exp.export(make_profile())
        assert agent.wait_for(lambda a: len(a.uploads) == 1)
        exp.stop(2)
        assert agent.requests == 3 and len(agent.uploads) == 1
        assert exp.sent == 1 and exp.dropped == 0
    finally:
        agent.close()


@pytest.mark.parametrize("status,hint", [(400, "check DD_API_KEY"), (404, "too old or profiling is disabled"), (413, "too large"), (403, "DD_SITE")])
def test_client_errors_are_explained_once_and_not_retried(status, hint, caplog):
    agent = FakeAgent(statuses=[status] * 10)
    try:
        exp = exporter_for(agent.url)
        with caplog.at_level(logging.WARNING, logger="profiler_agent"):
            exp.export(make_profile(0))
            exp.export(make_profile(1))
            assert agent.wait_for(lambda a: a.requests == 2)
            exp.stop(2)
        time.sleep(0.2)
        assert agent.requests == 2  # one attempt each, no retry storm
        assert exp.rejected == 2
        messages = [r.getMessage() for r in caplog.records if hint in r.getMessage()]
        assert len(messages) == 1, caplog.text  # one line, not one per profile
        assert "\n" not in messages[0]
    finally:
        agent.close()


def test_agent_down_keeps_a_bounded_queue_without_duplicates(caplog):
    down = FakeAgent()
    port = down.server.server_address[1]
    down.close()  # nothing listens there now
    exp = exporter_for(down.url, max_pending=3, upload_interval=0.2)
    with caplog.at_level(logging.WARNING, logger="profiler_agent"):
        for seq in range(6):
            exp.export(make_profile(seq))
        assert wait_until(lambda: exp.dropped >= 3 and "cannot upload" in caplog.text)
    assert "cannot upload to %s" % down.url in caplog.text
    # The agent comes back on the same port: what still waits arrives, once each, oldest first.
    back = FakeAgent(port=port)
    try:
        exp.export(make_profile(6))
        assert back.wait_for(lambda a: len(a.uploads) + exp.dropped == 7, 10)
        exp.stop(5)
        seqs = [u.pprof().sample[0].value[0] - 1234 for u in back.uploads]
        assert len(back.uploads) == exp.sent <= 4
        assert exp.sent + exp.dropped == 7
        assert seqs == sorted(set(seqs)) and seqs[-1] == 6  # no duplicate, oldest first, the newest arrived
    finally:
        back.close()


def test_slow_agent_times_out_and_stop_is_bounded():
    agent = FakeAgent(delay=3.0)
    try:
        exp = exporter_for(agent.url, api_timeout=0.3)
        exp.export(make_profile())
        began = time.monotonic()
        exp.stop(1.0)
        assert time.monotonic() - began < 1.5
        assert exp.sent == 0
    finally:
        agent.close()


def refuse_new_threads(monkeypatch):
    """The exporter's threads fail to start as in atexit callbacks on CPython 3.12 (interpreter
    finalizing); the fake agent's own threads still start."""

    class RefusedThread(exporter_module.ProfilerThread):
        def start(self):
            raise RuntimeError("can't create new thread at interpreter shutdown")

    monkeypatch.setattr(exporter_module, "ProfilerThread", RefusedThread)


def test_no_thread_at_shutdown_stop_uploads_inline(agent, monkeypatch, caplog):
    exp = exporter_for(agent.url)
    refuse_new_threads(monkeypatch)
    with caplog.at_level(logging.WARNING):
        exp.export(make_profile(0))
        exp.export(make_profile(1))
        exp.stop(5)
    assert [u.pprof().sample[0].value[0] - 1234 for u in agent.uploads] == [0, 1]
    assert exp.sent == 2 and exp.dropped == 0
    assert caplog.text == ""


def test_no_thread_at_shutdown_and_a_slow_agent_stop_stays_bounded(monkeypatch, caplog):
    agent = FakeAgent(delay=3.0)
    try:
        exp = exporter_for(agent.url, api_timeout=10.0)
        refuse_new_threads(monkeypatch)
        exp.export(make_profile(0))
        exp.export(make_profile(1))
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="profiler_agent"):
            exp.stop(0.5)
        assert time.monotonic() - began < 1.0
        assert exp.sent == 0 and exp.dropped == 2
        assert "2 profile(s) not uploaded before exit" in caplog.text
    finally:
        agent.close()


def test_unix_socket_agent(tmp_path):
    path = str(tmp_path / "apm.socket")
    agent = FakeAgent(unix_socket=path)
    try:
        exp = AgentExporter(load_config({"DD_TRACE_AGENT_URL": "unix://" + path}))
        assert exp.endpoint.unix_socket == path
        exp.export(make_profile())
        assert agent.wait_for(lambda a: len(a.uploads) == 1)
        exp.stop(2)
        assert agent.uploads[0].path == "/profiling/v1/input"
        assert agent.uploads[0].pprof().sample[0].value[0] == 1234
    finally:
        agent.close()


def test_endpoint_precedence():
    def env(**kw):
        return load_config({k: v for k, v in kw.items()})

    assert resolve(env(), exists=lambda p: False).url == "http://localhost:8126/profiling/v1/input"
    sock = resolve(env(), exists=lambda p: p == "/var/run/datadog/apm.socket")
    assert sock.unix_socket == "/var/run/datadog/apm.socket"
    assert resolve(env(DD_AGENT_HOST="agent", DD_TRACE_AGENT_PORT="9000")).url == "http://agent:9000/profiling/v1/input"
    assert resolve(env(DD_AGENT_HOST="::1")).url == "http://[::1]:8126/profiling/v1/input"
    assert resolve(env(DD_TRACE_AGENT_URL="https://a:1/", DD_AGENT_HOST="b")).url == "https://a:1/profiling/v1/input"
    assert resolve(load_config({"DD_TRACE_AGENT_URL": "http://env:1"}, agent_url="http://arg:2")).url.startswith("http://arg:2")
    agentless = resolve(env(DD_PROFILING_AGENTLESS="true", DD_API_KEY="secret-key", DD_SITE="datadoghq.eu"))
    assert agentless.url == "https://intake.profile.datadoghq.eu/api/v2/profile"
    assert agentless.headers == {"DD-API-KEY": "secret-key"}
    assert "secret-key" not in repr(agentless) and "secret-key" not in agentless.display
    # From the environment a bad location is refused by the configuration (warned, default used);
    # built in code, resolve refuses it.
    assert resolve(env(DD_TRACE_AGENT_URL="ftp://x"), exists=lambda p: False).url == "http://localhost:8126/profiling/v1/input"
    assert not resolve(env(DD_PROFILING_AGENTLESS="true"), exists=lambda p: False).agentless
    with pytest.raises(ValueError):
        resolve(ProfilerConfig(agent_url="ftp://x"))
    with pytest.raises(ValueError):
        resolve(ProfilerConfig(agentless=True))


def test_api_key_never_logged(caplog):
    agent = FakeAgent(statuses=[403])
    try:
        config = ProfilerConfig(agent_url=agent.url, api_key="supersecret")
        exp = AgentExporter(config, endpoint=resolve(config))
        exp.endpoint.headers["DD-API-KEY"] = "supersecret"
        with caplog.at_level(logging.DEBUG):
            exp.export(make_profile())
            assert agent.wait_for(lambda a: a.requests == 1)
            exp.stop(2)
        assert agent.requests == 1
        assert "supersecret" not in caplog.text
    finally:
        agent.close()


def test_container_id_from_cgroup():
    docker = "12:memory:/docker/" + "a" * 64 + "\n"
    assert container_id(docker) == "a" * 64
    systemd = "0::/system.slice/docker-" + "b" * 64 + ".scope\n"
    assert container_id(systemd) == "b" * 64
    ecs = "9:perf_event:/ecs/task/" + "c" * 32 + "-1234567890\n"
    assert container_id(ecs) == "c" * 32 + "-1234567890"
    assert container_id("0::/user.slice/user-1000.slice/session-2.scope\n") is None
    uuid = "0::/kubepods.slice/kubepods-pod1234.slice/crio-" + "d" * 8 + "-" + "e" * 4 + "-" + "f" * 4 + "-" + "0" * 4 + "-" + "1" * 12 + ".scope\n"
    assert container_id(uuid) == "d" * 8 + "-" + "e" * 4 + "-" + "f" * 4 + "-" + "0" * 4 + "-" + "1" * 12  # full UUIDs were missed


def test_container_headers_as_ddtrace_sends_them():
    """Container id and entity id (ci-<id>), else the cgroup node's inode (in-<inode>: cgroup v2 with
    a private namespace shows no id), and DD_EXTERNAL_ENV."""
    from profiler_agent.container import entity_headers

    docker = "12:memory:/docker/" + "a" * 64 + "\n"
    assert entity_headers(docker, {}) == {"Datadog-Container-ID": "a" * 64, "Datadog-Entity-ID": "ci-" + "a" * 64}
    private = "0::/\n"
    inodes = {"/sys/fs/cgroup": 4026531835}
    assert entity_headers(private, {"DD_EXTERNAL_ENV": "it-false,cn-app,pu-123"}, inode_of=lambda root, path: inodes.get(root)) == {
        "Datadog-Entity-ID": "in-4026531835", "Datadog-External-Env": "it-false,cn-app,pu-123"}
    assert entity_headers(None, {}) == {}


def test_default_exporter_unless_files_are_asked_for():
    assert AgentExporter.is_enabled(ProfilerConfig())
    assert not AgentExporter.is_enabled(ProfilerConfig(output_pprof="/tmp/p"))
