"""What the timeline costs, side by side with ddtrace, in one run: ``python benchmarks/timeline_cost.py [reps]``.

The timeline (``DD_PROFILING_TIMELINE_ENABLED``, default true in both) keeps each stack sample on
its own with its moment instead of summing it by stack. This runs ``workloads/timeline_threads.py``
(8 threads computing and sleeping in 10 ms turns for 6 s: many samples, changing stacks) without a
profiler and under each profiler with the timeline off and on, repetitions interleaved, in the
benchmark environment of ``bench.py`` (non-editable installs, ddtrace 4.16 from the index), with
each profiler's stack collector alone writing files. Per run it measures, as a user would:

- CPU seconds of the whole process (user + system, from ``wait4``), against the plain run;
- peak memory: the process's ``VmHWM``, read from ``/proc`` every 10 ms until it exits (``ru_maxrss``
  of a child carries the benchmark's own high-water mark across ``exec``);
- bytes of profile written (the files of the run, as they lie on disk: gzip for both).

Prints a table of medians; nothing is asserted (tests check behaviour, this prints figures).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench import DD_QUIET, DD_STACK_ONLY, base_env, ensure_env  # noqa: E402

WORKLOAD = [os.path.join(HERE, "workloads", "timeline_threads.py"), "8", "6"]


def measure(cmd, env, out_dir):
    """(CPU seconds, peak MiB, profile bytes) of one run of ``cmd``."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kib = 0
    while True:
        try:
            with open("/proc/%d/status" % proc.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
                        break
        except OSError:
            pass
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.01)
    proc.returncode = status
    size = sum(os.path.getsize(os.path.join(root, n)) for root, _d, names in os.walk(out_dir) for n in names)
    return usage.ru_utime + usage.ru_stime, peak_kib / 1024.0, size


def configs(python, out_root):
    bindir = os.path.dirname(python)
    runs = {"plain": ([python] + WORKLOAD, base_env(), os.path.join(out_root, "plain"))}
    for timeline in ("false", "true"):
        env = dict(base_env(), DD_PROFILING_TIMELINE_ENABLED=timeline, **DD_STACK_ONLY)
        out = os.path.join(out_root, "ours-" + timeline)
        runs["profiler, timeline " + ("on" if timeline == "true" else "off")] = (
            [os.path.join(bindir, "profiler-run"), "--output", out, python] + WORKLOAD, env, out)
        out = os.path.join(out_root, "dd-" + timeline)
        dd_env = dict(base_env(), DD_PROFILING_ENABLED="true", DD_PROFILING_OUTPUT_PPROF=os.path.join(out, "dd"),
                      DD_PROFILING_TIMELINE_ENABLED=timeline, **DD_QUIET, **DD_STACK_ONLY)
        runs["ddtrace, timeline " + ("on" if timeline == "true" else "off")] = (
            [os.path.join(bindir, "ddtrace-run"), python] + WORKLOAD, dd_env, out)
    return runs


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    python = ensure_env()
    out_root = tempfile.mkdtemp(prefix="timeline-cost-")
    runs = configs(python, out_root)
    results = {name: [] for name in runs}
    for _ in range(reps):
        for name, (cmd, env, out) in runs.items():
            results[name].append(measure(cmd, env, out))
    plain_cpu = statistics.median(r[0] for r in results["plain"])
    plain_rss = statistics.median(r[1] for r in results["plain"])
    print("timeline cost: %s (8 threads, 10 ms turns, 6 s), %d interleaved repetitions, medians" % (
        os.path.basename(WORKLOAD[0]), reps))
    print("| run | CPU s | CPU vs plain | peak MiB | +MiB vs plain | profile bytes |")
    print("|---|---|---|---|---|---|")
    for name, values in results.items():
        cpu = statistics.median(v[0] for v in values)
        rss = statistics.median(v[1] for v in values)
        size = statistics.median(v[2] for v in values)
        print("| %s | %.2f | %.3fx | %.1f | %+.1f | %s |" % (
            name, cpu, cpu / plain_cpu, rss, rss - plain_rss, "%.0f" % size if size else "-"))
    shutil.rmtree(out_root, ignore_errors=True)


if __name__ == "__main__":
    main()
