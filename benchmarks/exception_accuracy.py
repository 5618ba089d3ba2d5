"""Exception collector accuracy: f() raises 3000 ValueError and g() 1000 KeyError per round.

Prints a Markdown table of estimated vs true counts. ``python benchmarks/exception_accuracy.py [rounds]``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "collector_exception"))

from profiler_core.config import ProfilerConfig
from profiler_core.recorder import Recorder
from profiler_exception.collector import HAS_MONITORING, ExceptionCollector  # noqa: E402
from raising import f, g  # noqa: E402


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    recorder = Recorder()
    collector = ExceptionCollector(recorder, ProfilerConfig(exception_enabled=True))
    collector.start()
    for _ in range(rounds):
        for _ in range(3000):
            f()
        for _ in range(1000):
            g()
    collector.stop()
    estimated = {}
    for (stack, labels), values in recorder.flush().samples.items():
        key = (dict(labels)["exception type"], stack[0].function if stack else "")
        # each sampled exception counts once; the sampling rate scales it up to an estimate
        estimated[key] = estimated.get(key, 0) + values["exception-samples"] / collector.sampling_rates()["exception-samples"]
    path = "sys.monitoring" if HAS_MONITORING else "trace slot"
    print("| exceptions (%s, interval %g) | true | estimated | error |" % (path, collector.interval))
    print("|---|---|---|---|")
    for (kind, fn), true in ((("builtins.ValueError", "f"), 3000 * rounds), (("builtins.KeyError", "g"), 1000 * rounds)):
        got = estimated.get((kind, fn), 0)
        print("| %s in %s() | %d | %d | %+.1f%% |" % (kind, fn, true, got, 100.0 * (got - true) / true))


if __name__ == "__main__":
    main()
