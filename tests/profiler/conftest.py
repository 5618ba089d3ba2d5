import os
import subprocess
import sys

import pytest

FAKE_PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_plugin")


@pytest.fixture
def fake_plugin_path(monkeypatch):
    """Put the test-only fake collector plugin on sys.path (it registers by entry point)."""
    monkeypatch.syspath_prepend(FAKE_PLUGIN)
    return FAKE_PLUGIN


def run_launched(args, tmp_path, env_extra=None, script=None, timeout=60):
    """Run ``profiler-run ARGS`` (ARGS may mention {script}) with the installed collectors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
    env.update(env_extra or {})
    if script is not None:
        path = tmp_path / "app.py"
        path.write_text(script)
        args = [str(path) if a == "{script}" else a for a in args]
    launcher = [sys.executable, "-m", "profiler.run"]
    return subprocess.run(launcher + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path))
