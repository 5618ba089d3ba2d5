"""Memory of a long-running profiled service, side by side: plain, profiler, ddtrace.

``python benchmarks/soak.py [--seconds 600] [--rate 400]`` runs ``workloads/new_code.py`` (every
request a newly compiled function: ever-new stacks) under each at once, each at its defaults
writing files, and reads each process's resident memory (``VmRSS``) once a second from outside.
It prints, for each: RSS after the first minute (or a tenth of the run, if shorter), at the end,
the highest and lowest after that minute, and its growth; then what each adds to plain. The
programs sleep between requests, so three share two cores without running short of CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import DD_QUIET, base_env, ensure_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_mib(pid: int) -> "float | None":
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=400.0, help="requests per second (default 400)")
    parser.add_argument("--python", help="the benchmark venv's python (default: made by bench.py)")
    args = parser.parse_args()
    python = args.python or ensure_env()
    bindir = os.path.dirname(python)
    out = tempfile.mkdtemp(prefix="soak-")
    script = [python, os.path.join(HERE, "workloads", "new_code.py"), str(args.seconds), str(args.rate)]
    runs = {
        "plain": (script, base_env()),
        "profiler": ([os.path.join(bindir, "profiler-run"), "--output", os.path.join(out, "ours")] + script, base_env()),
        "ddtrace": (
            [os.path.join(bindir, "ddtrace-run")] + script,
            dict(base_env(), DD_PROFILING_ENABLED="true", DD_PROFILING_OUTPUT_PPROF=os.path.join(out, "dd"), **DD_QUIET),
        ),
    }
    procs = {name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for name, (cmd, env) in runs.items()}
    settle = min(60.0, args.seconds / 10)
    began = time.monotonic()
    series = {name: [] for name in procs}
    while any(p.poll() is None for p in procs.values()):
        now = time.monotonic() - began
        for name, proc in procs.items():
            value = rss_mib(proc.pid) if proc.poll() is None else None
            if value is not None and now <= args.seconds:
                series[name].append((now, value))
        time.sleep(1.0)
    requests = {name: p.stdout.read().strip() for name, p in procs.items()}
    print("soak: %.0f s of workloads/new_code.py at %.0f requests/s, RSS read once a second (MiB)" % (args.seconds, args.rate))
    print("| run | requests | RSS at %.0f s | at the end | lowest after | highest after | growth after %.0f s |" % (settle, settle))
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for name, points in series.items():
        after = [v for t, v in points if t >= settle]
        if not after:
            print("| %s | %s | no reading after %.0f s |" % (name, requests[name], settle))
            continue
        summary[name] = after
        print("| %s | %s | %.1f | %.1f | %.1f | %.1f | %+.1f |" % (
            name, requests[name], after[0], after[-1], min(after), max(after), after[-1] - after[0]))
    if "plain" in summary:
        for name in ("profiler", "ddtrace"):
            if name in summary:
                print("%s adds %.1f MiB at %.0f s, %.1f MiB at its highest" % (
                    name, summary[name][0] - summary["plain"][0], settle, max(summary[name]) - max(summary["plain"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
