"""No sample of any type comes from the profiler's own threads (issue #23).

The uploader (requests, urllib3's pool locks, connection errors), the scheduler (encoding,
compressing) and the samplers allocate, take locks and raise; none of that is the program's.
ddtrace shows none of it; before, 98% of one upload's lock-acquire-wait was the uploader's and
17-23% of heap-space came from the profiler's threads.
"""

import json
import subprocess
import sys
import textwrap

from pprof_helpers import decode, profile_files

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from profiler import Profiler
    from profiler_agent.exporter import AgentExporter
    from profiler_core.file_exporter import FileExporter
    from profiler_core.threads import PROFILER_THREADS

    out = sys.argv[1]


    class Uploader(AgentExporter):
        @classmethod
        def is_enabled(cls, config):
            return True  # beside the files, which alone would turn the uploader off


    p = Profiler(
        url="http://127.0.0.1:9",  # nothing listens: the uploader retries, raising and locking
        output_pprof=out,
        upload_interval=0.2,
        capture_pct=100.0,
        exception_sampling_interval=1,
        lock_enabled=True,
        memory_enabled=True,
        exception_enabled=True,
        exporters=[FileExporter, Uploader],
    )
    p.start(stop_on_exit=False)
    seen = {}
    lock = threading.Lock()
    keep = []
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        seen.update(PROFILER_THREADS)
        with lock:
            keep.append(bytearray(64 * 1024))
            del keep[:-50]
        try:
            raise KeyError("mine")
        except KeyError:
            pass
        time.sleep(0.002)
    seen.update(PROFILER_THREADS)
    p.stop()
    print(json.dumps({"profiler": sorted(seen), "names": sorted(seen.values()), "main": threading.get_ident()}))
    """
)

TYPES = ("lock-acquire", "exception-samples", "alloc-samples", "heap-space", "cpu-samples", "wall-samples")


def test_no_sample_comes_from_the_profilers_threads(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "prof")], capture_output=True, text=True,
                            timeout=60, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    threads = json.loads(result.stdout.strip().splitlines()[-1])
    profiler_threads, main = set(threads["profiler"]), threads["main"]
    assert len(profiler_threads) >= 3, (threads, result.stderr)  # scheduler, stack sampler, uploader
    from_main = {t: 0 for t in TYPES}
    files = profile_files(str(tmp_path))
    assert files
    for path in files:
        for stack, labels, values in decode(path).samples():
            ident = labels.get("thread id")
            name = str(labels.get("thread name", ""))
            for t, v in values.items():
                assert ident not in profiler_threads and not name.startswith("profiler-"), (t, labels, stack[:3])
                if ident == main and t in from_main:
                    from_main[t] += v
    assert all(from_main.values()), from_main  # the program's own samples of each type are there


START_SCRIPT = textwrap.dedent(
    """
    import time
    keep = [bytearray(1000) for _ in range(20000)]
    time.sleep(0.3)
    """
)
OWN_PACKAGES = ("/profiler/", "/profiler_core/", "/profiler_agent/", "/profiler_stack/", "/profiler_lock/",
                "/profiler_memory/", "/profiler_exception/")


def test_no_sample_comes_from_the_profilers_own_start_up(tmp_path):
    """Starting the profiler imports and builds things in the program's main thread, after the
    memory collector is on: none of it is the program's (it was 10% of alloc-space here)."""
    from launching import run_launched

    env = {"DD_PROFILING_OUTPUT_PPROF": str(tmp_path / "prof"), "DD_PROFILING_HEAP_SAMPLE_SIZE": "4096",
           "DD_PROFILING_CAPTURE_PCT": "100"}
    result = run_launched(["python", "{script}"], tmp_path, env, script=START_SCRIPT)
    assert result.returncode == 0, result.stderr
    total, own_space, own = 0, 0, []
    for path in profile_files(str(tmp_path)):
        for stack, labels, values in decode(path).samples():
            total += values.get("alloc-space", 0)
            if any(any(p in frame[0] for p in OWN_PACKAGES) for frame in stack):
                values = {k: v for k, v in values.items() if v}
                own_space += values.pop("alloc-space", 0) + values.pop("heap-space", 0)
                values.pop("alloc-samples", None)
                values.pop("heap-live-samples", None)
                if values:
                    own.append((values, [frame[1] for frame in stack][:4]))
    assert total > 10_000_000  # the program's 20 MB
    assert not own, own[:5]
    # The objects that say "from here on it is the profiler's work" (a few dozen bytes, sampled
    # here one in 4 KiB) are all that is left of it: at most 0.1%.
    assert own_space <= 0.001 * total, (own_space, total)
