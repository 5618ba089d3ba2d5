"""A thread pool's worker serving short CPU-bound requests between waits (a web server's thread).

``python short_requests.py SECONDS BURST_MS GAP_MS TRUTH_FILE``: submits a request of BURST_MS of CPU
every GAP_MS on average (0.6-1.4x at random) for SECONDS, then writes to TRUTH_FILE, as JSON, the
CPU seconds the worker spent in ``handler`` and in all (tests/collector_stack/workload.py, which the
accuracy test profiles the same way).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "collector_stack"))
from workload import serve_short_requests  # noqa: E402


def main() -> None:
    seconds, burst, gap = float(sys.argv[1]), float(sys.argv[2]) / 1e3, float(sys.argv[3]) / 1e3
    measured = serve_short_requests(seconds, burst, gap)
    with open(sys.argv[4], "w") as f:
        json.dump(measured, f)


if __name__ == "__main__":
    main()
