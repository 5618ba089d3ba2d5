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
PACKAGES = ["core", "collector-stack", "collector-lock", "collector-memory", "collector-exception", "profiler"]
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
    # Our distributions' names before the rename (pyprof-dd-*): an environment made before it has
    # them, sharing modules with the new ones; they go first, or uninstalling them later breaks those.
    old_names = ["profiler", "profiler-core"] + ["profiler-" + p for p in PACKAGES if p not in ("core", "profiler")]
    subprocess.call([python, "-m", "pip", "uninstall", "-q", "-y"] + old_names, stderr=subprocess.DEVNULL)
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


def configs_for(python, script_args, out_dir, stack_only=True, extra=None):
    """plain / profiler / ddtrace runs of ``script_args``: both profilers with only their stack collector
    (``stack_only``) or their defaults, then ``extra`` environment for both."""
    bindir = os.path.dirname(python)
    plain = (script_args, base_env())
    ours_env = dict(base_env())
    if stack_only:
        ours_env.update(DD_STACK_ONLY)
    ours_env.update(extra or {})
    ours = ([os.path.join(bindir, "profiler-run"), "--output", os.path.join(out_dir, "ours")] + script_args, ours_env)
    dd_env = dict(base_env(), DD_PROFILING_ENABLED="true", DD_PROFILING_OUTPUT_PPROF=os.path.join(out_dir, "dd"), **DD_QUIET)
    if stack_only:
        dd_env.update(DD_STACK_ONLY)
    dd_env.update(extra or {})
    ddtrace = ([os.path.join(bindir, "ddtrace-run")] + script_args, dd_env)
    return {"plain": plain, "profiler": ours, "ddtrace": ddtrace}


def run_rss(cmd, env) -> float:
    """Peak resident memory of the process, in MiB."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024.0


WORKLOADS = {
    # name: (script and arguments (full, quick), extra environment for both profilers, stack only for ddtrace)
    "CPU-bound recursion, 5 threads": (["cpu_threads.py", "4", "400"], ["cpu_threads.py", "4", "40"], {}, True),
    "100 threads, CPU and sleeps": (["many_threads.py", "100", "40"], ["many_threads.py", "100", "4"], {}, True),
    "asyncio fan-out, 500 tasks per batch": (["asyncio_fanout.py", "40"], ["asyncio_fanout.py", "4"], {}, True),
    "asyncio service at the defaults (queue, lock, 2,000 idle tasks)": (
        ["asyncio_service.py", "1000000"],
        ["asyncio_service.py", "20000"],
        {},
        False,
    ),
    "raise/catch loop, exception collector on": (
        ["exceptions.py", "2000000"],
        ["exceptions.py", "100000"],
        dict(DD_STACK_ONLY, DD_PROFILING_EXCEPTION_ENABLED="true", DD_PROFILING_STACK_ENABLED="false"),
        False,
    ),
    "small dicts and lists, memory collector alone": (
        ["allocations.py", "40"],
        ["allocations.py", "4"],
        {"DD_PROFILING_STACK_ENABLED": "false", "DD_PROFILING_LOCK_ENABLED": "false"},
        False,
    ),
    "mixed requests on 4 threads, all collectors on": (
        ["mixed.py", "40000"],
        ["mixed.py", "4000"],
        {"DD_PROFILING_EXCEPTION_ENABLED": "true"},
        False,
    ),
}


def bench_workloads(python, reps, out_dir, quick, only=None):
    results = {}
    for name, (full, short, extra, stack_only) in WORKLOADS.items():
        if only is not None and only.lower() not in name.lower():
            continue
        args = short if quick else full
        script = [python, os.path.join(HERE, "workloads", args[0])] + args[1:]
        configs = configs_for(python, script, out_dir, stack_only=stack_only, extra=extra)
        results[name] = summarize(interleave(configs, reps, lambda spec: run_reported(*spec)))
    return results


LOCK_WORKLOADS = {
    # title: (arguments (full, quick))
    "Lock, `with lock: pass`, 1 thread": (["lock", "1", "2000000"], ["lock", "1", "100000"]),
    "RLock, `with lock: pass`, 1 thread": (["rlock", "1", "2000000"], ["rlock", "1", "100000"]),
    "Lock, 4 threads contending": (["lock", "4", "300000"], ["lock", "4", "20000"]),
    "RLock, 4 threads contending": (["rlock", "4", "300000"], ["rlock", "4", "20000"]),
}
LOCK_ONLY = {"DD_PROFILING_STACK_ENABLED": "false", "DD_PROFILING_EXCEPTION_ENABLED": "false"}


def lock_configs(python, script, out_dir):
    """plain; this project's lock collector alone at capture 1% (default), 0%, 10%, 100%; ddtrace's at its default."""
    bindir = os.path.dirname(python)
    configs = {"plain": (script, base_env())}
    for pct in ("1", "0", "10", "100"):
        env = dict(base_env(), DD_PROFILING_CAPTURE_PCT=pct, **LOCK_ONLY)
        name = "profiler" if pct == "1" else "profiler %s%%" % pct
        configs[name] = ([os.path.join(bindir, "profiler-run"), "--output", os.path.join(out_dir, "ours")] + script, env)
    dd_env = dict(base_env(), DD_PROFILING_ENABLED="true", DD_PROFILING_OUTPUT_PPROF=os.path.join(out_dir, "dd"), **DD_QUIET)
    dd_env.update(DD_STACK_ONLY)
    dd_env.update({"DD_PROFILING_LOCK_ENABLED": "true", "DD_PROFILING_STACK_ENABLED": "false"})
    configs["ddtrace"] = ([os.path.join(bindir, "ddtrace-run")] + script, dd_env)
    return configs


def bench_locks(python, reps, out_dir, quick):
    """The lock collector alone on lock-heavy loops: work time per configuration."""
    results = {}
    for title, (full, short) in LOCK_WORKLOADS.items():
        script = [python, os.path.join(HERE, "workloads", "locks.py")] + (short if quick else full)
        results[title] = summarize(interleave(lock_configs(python, script, out_dir), reps, lambda spec: run_reported(*spec)))
    return results


def serve_and_load(spec, python, seconds, out_dir):
    """Start the web service under ``spec``, drive it for ``seconds`` from a plain process, stop it."""
    cmd, env = spec
    port_file = os.path.join(out_dir, "port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    server = subprocess.Popen(cmd + [port_file], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the web service did not start: %s" % " ".join(cmd))
            time.sleep(0.02)
        with open(port_file) as f:
            port = f.read().strip()
        out = subprocess.run(
            [python, os.path.join(HERE, "load.py"), port, str(seconds)], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out.strip().splitlines()[-1])
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def bench_web(python, reps, out_dir, quick):
    """Throughput and p99 latency of the web service, every profiler at its defaults."""
    script = [python, os.path.join(HERE, "workloads", "web_service.py")]
    configs = configs_for(python, script, out_dir, stack_only=False)
    seconds = 1.0 if quick else 4.0
    runs = interleave(configs, reps, lambda spec: serve_and_load(spec, python, seconds, out_dir))
    plain_rps = statistics.median(r["rps"] for r in runs["plain"])
    return {
        name: {
            "rps": statistics.median(r["rps"] for r in results),
            "ratio": statistics.median(r["rps"] for r in results) / plain_rps,
            "p50": statistics.median(r["p50_ms"] for r in results),
            "p99": statistics.median(r["p99_ms"] for r in results),
        }
        for name, results in runs.items()
    }


def bench_rss_and_size(python, out_dir):
    """Peak RSS on the CPU workload, and the size of the profile each profiler wrote for it."""
    script = [python, os.path.join(HERE, "workloads", "cpu_threads.py"), "4", "200"]
    rss, size = {}, {}
    for name, spec in configs_for(python, script, os.path.join(out_dir, "rss")).items():
        rss[name] = run_rss(*spec)
        files = []
        for root, _dirs, names in os.walk(os.path.join(out_dir, "rss")):
            files += [os.path.join(root, n) for n in names if n.endswith(".pprof") and (n.startswith("dd") == (name == "ddtrace"))]
        size[name] = sum(os.path.getsize(f) for f in files) / max(len(files), 1) if files else 0.0
    return rss, size


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
    return summarize(interleave(configs_for(python, script, out_dir, stack_only=False), reps, lambda spec: run_timed(*spec)))


def bench_accuracy(python, quick):
    """The accuracy tables of the known-split workloads, as Markdown lines."""
    stack = subprocess.run(
        [python, os.path.join(HERE, "stack_accuracy.py")] + (["1", "10"] if quick else ["3", "40"]),
        capture_output=True, text=True, check=True,
    ).stdout
    table = [line for line in stack.splitlines() if line.startswith("|")]
    exceptions = subprocess.run(
        [python, os.path.join(HERE, "exception_accuracy.py"), "5" if quick else "60"], capture_output=True, text=True, check=True
    ).stdout
    return table + [""] + [line for line in exceptions.splitlines() if line.startswith("|")]


def bench_tick(python):
    out = subprocess.run([python, os.path.join(HERE, "tick_cost.py")], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


CHART = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data = json.loads(sys.argv[1])
names = list(data)
fig, ax = plt.subplots(figsize=(9, 0.6 * len(names) + 1.5))
y = range(len(names))
ax.barh([i + 0.2 for i in y], [data[n]["profiler"] for n in names], height=0.4, label="profiler")
ax.barh([i - 0.2 for i in y], [data[n]["ddtrace"] for n in names], height=0.4, label="ddtrace")
ax.set_yticks(list(y))
ax.set_yticklabels(names)
ax.axvline(1.0, color="black", linewidth=0.8)
ax.set_xlabel("time relative to the unprofiled run (start-up: process time)")
ax.set_xscale("log")
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
"""


def chart(python, workloads, startup, web, path):
    """A PNG of the ratios to the unprofiled run (matplotlib, installed in the benchmark env)."""
    if subprocess.call([python, "-c", "import matplotlib"], stderr=subprocess.DEVNULL) != 0:
        subprocess.check_call([python, "-m", "pip", "install", "-q", "matplotlib"])
    data = {title: {k: v[1] for k, v in result.items()} for title, result in workloads.items()}
    data["start-up, empty script"] = {k: v[1] for k, v in startup.items()}
    data["web service, time per request"] = {k: 1.0 / v["ratio"] for k, v in web.items()}
    subprocess.check_call([python, "-c", CHART, json.dumps(data), path])


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


def workload_tables(workloads):
    """Markdown lines: one table per workload, median work time and ratio to plain per run."""
    lines = []
    for title, result in workloads.items():
        lines += [
            "",
            "## %s" % title,
            "",
            "| run | median work time | ratio to plain | spread (IQR) |",
            "|---|---|---|---|",
        ]
        for name, (m, ratio, iqr) in result.items():
            lines.append("| %s | %.3f s | %.3fx | %.1f%% |" % (name, m, ratio, iqr))
    return lines


def write_results(path, startup, workloads, web, rss, size, ticks, accuracy, reps):
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python benchmarks/bench.py` on %s (%s); %d interleaved repetitions, medians."
        % (time.strftime("%Y-%m-%d"), machine(), reps),
        "ddtrace: `%s` (`ddtrace-run`, tracing off, files instead of an agent), with the same collectors on as ours in each table." % DDTRACE,
        "",
        "## Launcher start-up (empty script, whole process)",
        "",
        "| run | median | added to plain |",
        "|---|---|---|",
    ]
    plain = startup["plain"][0]
    for name, (m, _ratio, _iqr) in startup.items():
        lines.append("| %s | %.1f ms | %+.1f ms |" % (name, m * 1e3, (m - plain) * 1e3))
    lines += workload_tables(workloads)
    lines += [
        "",
        "Work time is measured inside each program (start-up excluded). Ratios within the spread",
        "are not distinguishable from noise on this machine. Stack collector only, unless the title",
        "says otherwise (same collectors on both sides); ddtrace records no exceptions before CPython",
        "3.12. Memory: allocation and heap profiles at the default sample size (1 MiB). Lock tables: the lock",
        "collector alone, `profiler` at the default capture (1%), then at 0% (profiled types",
        "installed, nothing sampled), 10% and 100%; ddtrace's lock profiler alone at its default (1%).",
        "",
        "## Web service under load on loopback (every profiler at its defaults)",
        "",
        "`workloads/web_service.py` (stdlib threading HTTP server: query parsing, a shared lock, JSON,",
        "an exception per hundred requests) driven by `load.py` (8 keep-alive clients, closed loop, in a",
        "separate unprofiled process).",
        "",
        "| run | requests/s | throughput vs plain | p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for name, r in web.items():
        lines.append("| %s | %.0f | %.3fx | %.2f ms | %.2f ms |" % (name, r["rps"], r["ratio"], r["p50"], r["p99"]))
    lines += [
        "",
        "## Memory and profile size (CPU-bound workload)",
        "",
        "| run | peak RSS | bytes per profile file |",
        "|---|---|---|",
    ]
    for name in rss:
        lines.append("| %s | %.1f MiB | %s |" % (name, rss[name], "%.0f" % size[name] if size[name] else "-"))
    lines += [
        "",
        "## Accuracy on the known-split workloads",
        "",
        "Stack: a()/b() burn 70/30 ms of CPU, c() sleeps 50 ms (`benchmarks/stack_accuracy.py`); shares",
        "compared with what the workload measured it spent.",
        "",
    ] + accuracy
    lines += [
        "",
        "## Stack sampler: cost of one tick (CPU time)",
        "",
        "Default where allowed: the capturing thread reads stacks without the GIL, then the sampler turns",
        "the capture into samples with it. Fallback: the sampler reads stacks itself, with the GIL.",
        "",
        "| threads | depth | capture, no GIL | into samples, GIL | fallback tick, GIL |",
        "|---|---|---|---|---|",
    ]
    for row in ticks:
        lines.append("| %d | %d | %.0f µs | %.0f µs | %.0f µs |" % (
            row["threads"], row["depth"], row.get("capture_us", 0), row.get("samples_us", 0), row["tick_us"]))
    lines.append("")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions: check that the runner works")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="only the overhead tables whose title contains TEXT (e.g. memory), printed; RESULTS.md is left alone",
    )
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 15)
    python = ensure_env()
    if args.only:
        with tempfile.TemporaryDirectory() as out_dir:
            workloads = bench_workloads(python, reps, out_dir, args.quick, only=args.only)
        if not workloads:
            print("no overhead table title contains %r" % args.only, file=sys.stderr)
            return 2
        print("CPython %s, %s, %d interleaved repetitions" % (sys.version.split()[0], DDTRACE, reps))
        print("\n".join(workload_tables(workloads)))
        return 0
    with tempfile.TemporaryDirectory() as out_dir:
        startup = bench_startup(python, reps * 2, out_dir)
        workloads = bench_workloads(python, reps, out_dir, args.quick)
        workloads.update(bench_locks(python, reps, out_dir, args.quick))
        web = bench_web(python, reps, out_dir, args.quick)
        rss, size = bench_rss_and_size(python, out_dir)
    ticks = bench_tick(python)
    accuracy = bench_accuracy(python, args.quick)
    print(write_results(args.output, startup, workloads, web, rss, size, ticks, accuracy, reps))
    chart(python, workloads, startup, web, os.path.splitext(args.output)[0] + ".png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
