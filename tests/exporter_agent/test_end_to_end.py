import os
import subprocess
import sys

from agent_server import FakeAgent

SCRIPT = """
import time
def handle():
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass
handle()
"""


def test_profiler_run_delivers_tagged_profiles_to_the_agent(tmp_path):
    agent = FakeAgent()
    try:
        script = tmp_path / "app.py"
        script.write_text(SCRIPT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
        env["DD_TRACE_AGENT_URL"] = agent.url
        env["DD_TAGS"] = "team:core"
        cmd = [sys.executable, "-m", "profiler.run", "--service", "demo", "--env", "test", "--version", "9.9", sys.executable, str(script)]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert agent.wait_for(lambda a: len(a.uploads) >= 1, 10), result.stderr
        up = agent.uploads[-1]
        tags = up.tags
        assert (tags["service"], tags["env"], tags["version"], tags["team"]) == ("demo", "test", "9.9", "core")
        assert tags["process_id"] != str(os.getpid())
        profile = up.pprof()
        names = {profile.string_table[f.name] for f in profile.function}
        assert "handle" in names
    finally:
        agent.close()
