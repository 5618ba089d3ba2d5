"""Running a program under ``profiler-run`` from a test (shared by tests/profiler)."""

import os
import signal
import subprocess
import sys

from hang_report import hang_report, with_faulthandler


def run_launched(args, tmp_path, env_extra=None, script=None, timeout=60):
    """Run ``profiler-run ARGS`` (ARGS may mention {script}) with the installed collectors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
    env.update(env_extra or {})
    if script is not None:
        path = tmp_path / "app.py"
        path.write_text(script)
        args = [str(path) if a == "{script}" else a for a in args]
    launcher = [sys.executable, "-m", "profiler.run"]
    proc = subprocess.Popen(launcher + args, env=with_faulthandler(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(tmp_path), start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        report = hang_report(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError("no exit after %s s\n%s\nstdout:\n%s\nstderr:\n%s" % (
            timeout, report, stdout[-3000:], stderr[-8000:])) from None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind
        except OSError:
            pass
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
