"""Benchmarks side by side with ddtrace, interleaved, in one run: ``python benchmarks/bench.py``.

Creates (once) a virtual environment under ~/.cache/profiler-bench holding
``ddtrace`` from the package index and this repository's packages (regular,
non-editable installs, reinstalled each run), then runs each configuration of
each benchmark in turn, repetition after repetition (A B C A B C ...), and
reports medians and ratios to the unprofiled run. Results go to
benchmarks/RESULTS.md. ``--quick`` runs few repetitions (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PACKAGES = ["core", "collector-stack", "profiler"]
DDTRACE = "ddtrace==4.16.0"

# ddtrace with only its profiler, writing files, never reaching for an agent.
DD_QUIET = {
    "DD_TRACE_ENABLED": "false",
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    "DD_PROFILING_UPLOAD_INTERVAL": "60",
}
DD_STACK_ONLY = {
    "DD_PROFILING_LOCK_ENABLED": "false",
    "DD_PROFILING_MEMORY_ENABLED": "false",
    "DD_PROFILING_HEAP_ENABLED": "false",
    "DD_PROFILING_EXCEPTION_ENABLED": "false",
}


def venv_dir() -> str:
    tag = "py%d%d" % sys.version_info[:2]
    return os.environ.get("PROFILER_BENCH_VENV", os.path.expanduser("~/.cache/profiler-bench/venv-" + tag))


def ensure_env() -> str:
    """The benchmark environment's python, with ddtrace and our packages installed."""
    venv = venv_dir()
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
        subprocess.check_call([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    if subprocess.call([python, "-c", "import ddtrace"], stderr=subprocess.DEVNULL) != 0:
        subprocess.check_call([python, "-m", "pip", "install", "-q", DDTRACE])
    subprocess.check_call(
        [python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps"]
        + [os.path.join(ROOT, "packages", p) for p in PACKAGES]
    )
    subprocess.check_call([python, "-m", "pip", "install", "-q"] + [os.path.join(ROOT, "packages", p) for p in PACKAGES])
    return python


def run_timed(cmd, env) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def run_reported(cmd, env) -> float:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def interleave(configs, reps, measure):
    """{name: [values]} measuring every config once per repetition, in turn."""
    results = {name: [] for name in configs}
    for _ in range(reps):
        for name, spec in configs.items():
            results[name].append(measure(spec))
    return results


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_") and k != "PYTHONPATH"}
    return env


def configs_for(python, script_args, out_dir, stack_only=True):
    bindir = os.path.dirname(python)
    plain = (script_args, base_env())
    ours_env = dict(base_env())
    ours = ([os.path.join(bindir, "profiler-run"), "--output", out_dir] + script_args, ours_env)
    dd_env = dict(base_env(), DD_PROFILING_ENABLED="true", DD_PROFILING_OUTPUT_PPROF=os.path.join(out_dir, "dd"), **DD_QUIET)
    if stack_only:
        dd_env.update(DD_STACK_ONLY)
    ddtrace = ([os.path.join(bindir, "ddtrace-run")] + script_args, dd_env)
    return {"plain": plain, "profiler": ours, "ddtrace": ddtrace}


def summarize(results, base="plain"):
    """{name: (median, ratio of medians to base, interquartile range as % of the median)}."""
    med = {name: statistics.median(values) for name, values in results.items()}
    out = {}
    for name, values in results.items():
        q = statistics.quantiles(values, n=4) if len(values) >= 2 else [values[0]] * 3
        out[name] = (med[name], med[name] / med[base], 100.0 * (q[2] - q[0]) / med[name])
    return out


def bench_startup(python, reps, out_dir):
    script = [python, os.path.join(HERE, "workloads", "empty.py")]
    return summarize(interleave(configs_for(python, script, out_dir), reps, lambda spec: run_timed(*spec)))


def bench_cpu_threads(python, reps, out_dir, quick):
    script = [python, os.path.join(HERE, "workloads", "cpu_threads.py"), "4", "40" if quick else "400"]
    return summarize(interleave(configs_for(python, script, out_dir), reps, lambda spec: run_reported(*spec)))


def bench_tick(python):
    out = subprocess.run([python, os.path.join(HERE, "tick_cost.py")], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, %s, CPython %s" % (cpu, os.cpu_count() or 0, platform.system(), platform.python_version())


def write_results(path, startup, cpu, ticks, reps):
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python benchmarks/bench.py` on %s (%s); %d interleaved repetitions, medians."
        % (time.strftime("%Y-%m-%d"), machine(), reps),
        "ddtrace: `%s` with only its stack profiler on (`ddtrace-run`, tracing off, files instead of an agent)." % DDTRACE,
        "",
        "## Launcher start-up (empty script, whole process)",
        "",
        "| run | median | added to plain |",
        "|---|---|---|",
    ]
    plain = startup["plain"][0]
    for name, (m, _ratio, _iqr) in startup.items():
        lines.append("| %s | %.1f ms | %+.1f ms |" % (name, m * 1e3, (m - plain) * 1e3))
    lines += [
        "",
        "## CPU-bound recursive calls, 5 threads (stack collector only)",
        "",
        "| run | median work time | ratio to plain | spread (IQR) |",
        "|---|---|---|---|",
    ]
    for name, (m, ratio, iqr) in cpu.items():
        lines.append("| %s | %.3f s | %.3fx | %.1f%% |" % (name, m, ratio, iqr))
    lines += [
        "",
        "Ratios within the spread are not distinguishable from noise on this machine.",
    ]
    lines += ["", "## Stack sampler: cost of one tick", "", "| threads | depth | tick |", "|---|---|---|"]
    for row in ticks:
        lines.append("| %d | %d | %.0f µs |" % (row["threads"], row["depth"], row["tick_us"]))
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions: check that the runner works")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 15)
    python = ensure_env()
    with tempfile.TemporaryDirectory() as out_dir:
        startup = bench_startup(python, reps * 2, out_dir)
        cpu = bench_cpu_threads(python, reps, out_dir, args.quick)
    ticks = bench_tick(python)
    print(write_results(args.output, startup, cpu, ticks, reps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
