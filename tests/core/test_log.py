"""The lazy logger: no import of logging outside the main thread (a fork then could deadlock the child)."""

import subprocess
import sys

SCRIPT = r"""
import sys, threading
from profiler_core._log import get_logger

log = get_logger("profiler_test")

def warn():
    log.warning("profiler: agent unreachable (%d dropped)", 3)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("upload failed")

t = threading.Thread(target=warn)
t.start()
t.join()
print("logging imported:", "logging" in sys.modules)
"""


def test_a_warning_from_a_background_thread_is_one_line_without_importing_logging():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "logging imported: False"
    assert result.stderr.splitlines() == [
        "profiler: agent unreachable (3 dropped)",
        "upload failed: ValueError: boom",
    ]
