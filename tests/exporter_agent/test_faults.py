"""The agent exporter against a hostile or failing intake: no secret follows a redirect, no retry storm,
no late exit when the agent is down (issue #17, items 1 and 2)."""

import logging
import os
import subprocess
import sys
import time

import pytest

from agent_server import FakeAgent
from profiler_agent.endpoint import Endpoint, resolve
from profiler_agent.exporter import AgentExporter
from profiler_core.config import ProfilerConfig, load_config
from test_upload import exporter_for, make_profile
from waiting import wait_until


def agentless_exporter(url, key="secret-key-123"):
    """An exporter sending as agentless does (the key in DD-API-KEY) to a local stand-in intake."""
    config = ProfilerConfig(agent_url=url, api_key=key, agentless=True, upload_interval=5.0, api_timeout=2.0)
    endpoint = Endpoint(url + "/api/v2/profile", headers={"DD-API-KEY": key}, agentless=True)
    return AgentExporter(config, endpoint=endpoint, retry_base=0.01)


def test_a_redirect_is_never_followed_and_the_key_stays(caplog):
    """The intake answers 307 to a plain-HTTP host: nothing reaches that host (requests would follow
    and resend DD-API-KEY), each profile is dropped, one line says so, the key is in no log."""
    elsewhere = FakeAgent()
    intake = FakeAgent(statuses=[307] * 9, location=elsewhere.url + "/steal?token=abc")
    try:
        exp = agentless_exporter(intake.url)
        with caplog.at_level(logging.DEBUG):
            for seq in range(3):
                exp.export(make_profile(seq))
            assert intake.wait_for(lambda a: a.requests == 3)
            exp.stop(2)
        time.sleep(0.1)
        assert elsewhere.requests == 0 and intake.requests == 3
        assert exp.stats()["redirects_refused"] == 3 and exp.sent == 0
        lines = [r.getMessage() for r in caplog.records if "redirect" in r.getMessage()]
        assert len(lines) == 1, caplog.text
        assert "307" in lines[0] and elsewhere.url.rsplit(":", 1)[0] in lines[0] and "token" not in lines[0]
        assert "secret-key-123" not in caplog.text
    finally:
        intake.close()
        elsewhere.close()


@pytest.mark.parametrize(
    "site",
    ["evil.example@datadoghq.com", "datadoghq.com/x", "datadoghq.com:443", "datadoghq.com#", "a b.com", "localhost", "-x.com"],
)
def test_dd_site_must_be_a_host_name(site, caplog):
    with caplog.at_level(logging.WARNING, logger="profiler_core.config"):
        config = load_config({"DD_PROFILING_AGENTLESS": "true", "DD_API_KEY": "k", "DD_SITE": site})
    assert config.site == "datadoghq.com"
    assert resolve(config).url == "https://intake.profile.datadoghq.com/api/v2/profile"
    assert any("DD_SITE" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("site", ["datadoghq.eu", "us3.datadoghq.com", "ddog-gov.com", "AP1.DATADOGHQ.COM"])
def test_real_sites_are_accepted(site):
    assert load_config({"DD_SITE": site}).site == site.lower()


def attempt_times(exp):
    """The moments (time.monotonic) at which ``exp`` starts each upload, as it starts them: the
    agent's own arrival times would also hold its handler threads' scheduling delays."""
    times = []
    post = exp._post

    def timed_post(*args, **kwargs):
        times.append(time.monotonic())
        return post(*args, **kwargs)

    exp._post = timed_post
    return times


def test_no_retry_storm_at_stop_and_retries_respect_the_backoff():
    """A 500-answering agent: while stopping, the final profile is retried only as the backoff allows
    before the deadline (it used to be retried without pause until the deadline: hundreds of requests)."""
    agent = FakeAgent(statuses=[500] * 1000)
    try:
        exp = exporter_for(agent.url, upload_interval=5.0)
        exp.retry_base = 0.1
        times = attempt_times(exp)
        exp.export(make_profile(0))
        assert agent.wait_for(lambda a: a.requests >= 1)
        began = time.monotonic()
        exp.stop(2.0)
        assert time.monotonic() - began < 3.0
        during_stop = [t for t in times if t >= began]
        assert len(during_stop) <= 6, len(during_stop)  # 0.1, 0.2, 0.4, 0.8 s pauses fit in 2 s
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(gap >= 0.05 * 0.9 for gap in gaps), gaps  # at least half of the first backoff, always
        # an attempt still under way when stop() returned ends within its own timeout (the deadline's)
        assert wait_until(lambda: exp.dropped == 1, timeout=2.0), exp.stats()
        assert exp.sent == 0
    finally:
        agent.close()


def test_news_does_not_shorten_the_backoff():
    """Profiles arriving every few ms while the agent answers 500 do not trigger attempts between the
    backoff's pauses (a new profile used to wake the uploader into an immediate retry)."""
    agent = FakeAgent(statuses=[500] * 1000)
    try:
        exp = exporter_for(agent.url, upload_interval=1.0, max_pending=3)
        exp.retry_base = 0.05
        end = time.monotonic() + 0.8
        seq = 0
        while time.monotonic() < end:
            exp.export(make_profile(seq))
            seq += 1
            time.sleep(0.005)
        exp.stop(0.0)
        times = list(agent.request_times)
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert len(times) <= 8, len(times)
        assert all(gap >= 0.025 * 0.9 for gap in gaps), gaps
        assert wait_until(lambda: exp.stats()["failed_attempts"] == agent.requests)
    finally:
        agent.close()


def test_a_reachable_slow_agent_still_gets_the_final_profile():
    agent = FakeAgent(delay=0.8)
    try:
        exp = exporter_for(agent.url, api_timeout=3.0)
        exp.export(make_profile(0))
        exp.stop(5.0)
        assert exp.sent == 1 and len(agent.uploads) == 1
    finally:
        agent.close()


def test_an_unreachable_agent_at_stop_is_given_up_at_once(caplog):
    down = FakeAgent()
    down.close()
    exp = exporter_for(down.url)
    with caplog.at_level(logging.WARNING, logger="profiler_agent"):
        for seq in range(3):
            exp.export(make_profile(seq))
        began = time.monotonic()
        exp.stop(5.0)
    assert time.monotonic() - began < 1.0
    assert exp.dropped == 3 and "agent unreachable" in caplog.text


EXIT_SCRIPT = """
import sys, time
def work():
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        pass
work()
sys.stdout.write("%r\\n" % time.time())
sys.stdout.flush()
"""


def _closed_port_url():
    down = FakeAgent()
    down.close()
    return down.url


@pytest.mark.parametrize(
    "where",
    ["refused", "unresolvable", "missing-socket"],
)
def test_a_program_exits_promptly_when_the_agent_is_down(tmp_path, where):
    """profiler-run with the agent down: the program's process ends about when the program does (it
    used to end 5-7 s late). Measured here: 0.1-0.3 s; the bound is loose for busy machines."""
    url = {
        "refused": _closed_port_url(),
        "unresolvable": "http://no-such-agent.invalid:8126",
        "missing-socket": "unix://%s" % (tmp_path / "no" / "apm.socket"),
    }[where]
    script = tmp_path / "app.py"
    script.write_text(EXIT_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
    env["DD_TRACE_AGENT_URL"] = url
    cmd = [sys.executable, "-m", "profiler.run", sys.executable, str(script)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    ended = time.time()
    assert result.returncode == 0, result.stderr
    program_end = float(result.stdout.strip().splitlines()[-1])
    assert ended - program_end < 2.5, (ended - program_end, result.stderr)
    assert "Traceback" not in result.stderr
    assert "not uploaded before exit" in result.stderr
