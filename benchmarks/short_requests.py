"""Where the CPU of requests shorter than the sampling interval goes, side by side with ddtrace:
``python benchmarks/short_requests.py [runs]``.

A thread pool's worker serves requests of 1, 2 and 5 ms of CPU, one every 10 or 20 ms on average
(benchmarks/workloads/short_requests.py), for 20 s, under ``profiler-run`` and under ``ddtrace-run``,
both with only their stack collector and writing pprof files. Prints the share of the worker's
CPU time each profile gives the request handler next to the share the worker measured
(thread_time around each request), and the worker's total CPU time in the profile against its
clock. Figures per run; the truth is usually 96-99% (the rest is the pool's own code).
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import configs_for, ensure_env  # noqa: E402

WORKLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads", "short_requests.py")
SECONDS = 20.0
CASES = [(1, 20), (2, 10), (5, 10)]  # (request CPU ms, mean gap ms)


def worker_cpu(prefix: str):
    """(handler's CPU, the worker's CPU) in seconds, from the pprof files whose path starts with
    ``prefix`` (run in the benchmark environment, which has the pprof reader)."""
    from profiler.pprof_reader import load

    paths = [os.path.join(root, name) for root, _dirs, names in os.walk(os.path.dirname(prefix)) for name in names
             if os.path.join(root, name).startswith(prefix) and ".pprof" in name]
    handler = total = 0
    profiles = load(paths)
    for sample in profiles.samples:
        if not str(sample.labels.get("thread name", "")).startswith("pool"):
            continue
        value = sample.values.get("cpu-time", 0)
        total += value
        if any(frame[0] == "handler" or frame[0].endswith(".handler") for frame in sample.frames):
            handler += value
    return handler / 1e9, total / 1e9


def measure(python, name, cmd, env, out_dir, truth_file):
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    with open(truth_file) as f:
        truth = json.load(f)
    profiles = os.path.join(out_dir, "ours", "") if name == "profiler" else os.path.join(out_dir, "dd")
    handler, total = json.loads(subprocess.check_output([python, __file__, "--worker-cpu", profiles]))
    return truth, handler, total


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    python = ensure_env()
    if subprocess.call([python, "-c", "import zstandard"], stderr=subprocess.DEVNULL) != 0:
        subprocess.check_call([python, "-m", "pip", "install", "-q", "zstandard"])  # ddtrace's files
    print("Share of a pool worker's CPU in its request handler (truth: measured by the worker); "
          "worker CPU in the profile / its clock")
    print("%-16s %-9s %8s %8s %12s" % ("request / gap", "profiler", "truth", "profile", "CPU counted"))
    for burst, gap in CASES:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as out:
                truth_file = os.path.join(out, "truth.json")
                args = [python, WORKLOAD, str(SECONDS), str(burst), str(gap), truth_file]
                configs = configs_for(python, args, out)
                for name in ("profiler", "ddtrace"):
                    truth, handler, total = measure(python, name, *configs[name], out, truth_file)
                    share = 100.0 * handler / total if total else float("nan")
                    print("%-16s %-9s %7.1f%% %7.1f%% %11.2fx" % (
                        "%d ms / %d ms" % (burst, gap), name, 100.0 * truth["handler"] / truth["total"], share,
                        total / truth["total"]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker-cpu"]:
        print(json.dumps(worker_cpu(sys.argv[2])))
    else:
        main()
