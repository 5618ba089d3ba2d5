"""Running a program under ``profiler-run`` from a test (shared by tests/profiler)."""

import os
import subprocess
import sys


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
