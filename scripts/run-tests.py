"""Run the test suite: everything in parallel (pytest-xdist), then the timing-sensitive accuracy tests alone.

The accuracy tests check profiles against measured ground truth; run beside
CPU-heavy tests on a 2-core machine they would measure the contention instead.
``python scripts/run-tests.py [pytest args, default: tests]``.
"""

from __future__ import annotations

import subprocess
import sys

NO_TESTS_COLLECTED = 5


def main() -> int:
    args = sys.argv[1:] or ["tests"]
    pytest = [sys.executable, "-m", "pytest"]
    code = subprocess.call(pytest + ["-n", "auto", "--dist", "loadfile", "-m", "not accuracy"] + args)
    if code not in (0, NO_TESTS_COLLECTED):
        return code
    accuracy = subprocess.call(pytest + ["-p", "no:xdist", "-m", "accuracy"] + args)
    if accuracy == NO_TESTS_COLLECTED:
        accuracy = 0
    if code == NO_TESTS_COLLECTED and accuracy == 0:
        return 0
    return accuracy or code


if __name__ == "__main__":
    sys.exit(main())
