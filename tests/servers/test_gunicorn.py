"""gunicorn under profiler-run: sync, --preload, gthread, --max-requests, gevent workers."""

import pytest

import os

from harness import HERE, free_port, get, run_server, tool
from pprof_helpers import decode


def gunicorn(port, *args):
    return [tool("gunicorn"), "--bind", "127.0.0.1:%d" % port, "--workers", "2", "--graceful-timeout", "5",
            "--config", os.path.join(HERE, "gunicorn_ready.py"), *args, "apps:application"]


def run_gunicorn(tmp_path, port, *args):
    """Run gunicorn with ``args``; SIGTERM once every worker has its signal handlers (see
    gunicorn_ready.py: a worker booting 1 s late on a loaded machine missed it and was killed)."""
    ready = tmp_path / "ready"
    ready.mkdir()

    def workers_ready(pids):
        workers = pids[1:]  # pids[0] is the arbiter
        return len(workers) >= 2 and all((ready / str(pid)).exists() for pid in workers)

    return run_server(tmp_path, gunicorn(port, *args), port, env_extra={"READY_DIR": str(ready)},
                      ready_before_signal=workers_ready)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="sync"),
        pytest.param(("--preload",), id="preload"),
        pytest.param(("--worker-class", "gthread", "--threads", "4"), id="gthread"),
        pytest.param(("--max-requests", "8"), id="max-requests"),
    ],
)
def test_gunicorn(tmp_path, args):
    port = free_port()
    run = run_gunicorn(tmp_path, port, *args)
    # Every worker that answered a few requests shows the handler, including fresh workers
    # (--max-requests restarts them every 8 requests) and gthread workers, which answer in pool
    # threads started by the first requests: frames are named from what the capture copied, new
    # threads are captured from the next interval on, and a fresh process's first costly batches
    # no longer stretch the sampling interval (each of these left workers without the handler
    # under a loaded run before).
    run.check(handler_in_every_answering_worker=True)
    assert run.returncode == 0, run.stderr[-3000:]


def test_gunicorn_gevent_workers(tmp_path):
    port = free_port()
    run = run_gunicorn(tmp_path, port, "--worker-class", "gevent")
    # A gevent worker answers its requests in greenlets of one thread, often all within a few
    # samples on a loaded machine: the handler must be in the workers' profiles taken together
    # (tests/profiler/test_gunicorn_gevent.py checks each worker with a longer load).
    run.check(handler_in_every_answering_worker=False)
    assert any(run.handler_time(pid) > 0 for pid in run.answered_by), run.stderr[-3000:]
    assert run.returncode == 0, run.stderr[-3000:]


def test_gunicorn_gthread_cpu_of_short_requests_is_the_handlers(tmp_path):
    """A gthread worker whose requests take 2 ms of CPU, one every ~12 ms (light load): its pool
    threads wait in the pool's queue at nearly every capture, and the CPU between is the handler's.
    The profile's CPU in the handler is most of what the handler measured of itself: 68-76% here,
    where the load's client shares the 2 cores and a pool thread woken for a request often waits
    for a core at a capture (it then counts as on the CPU, in the pool's wait); on an idle core
    the share is 89-98% (tests/collector_stack/test_accuracy.py). It was 12-15% here when the CPU
    between two samples went to the stack sampled, as it does with ddtrace 4.16. A burst of load
    from elsewhere can push one run under the bound: up to two more runs."""
    for attempt in range(3):
        profiled, measured = _short_requests_under_gunicorn(tmp_path / str(attempt))
        if 0.55 * measured <= profiled <= 1.2 * measured:
            return
        print("run %d outside the bounds: %.3f s profiled, %.3f s measured" % (attempt + 1, profiled / 1e9, measured / 1e9))
    assert 0.55 * measured <= profiled <= 1.2 * measured, (profiled / 1e9, measured / 1e9)


def _short_requests_under_gunicorn(tmp_path):
    """(CPU the profile gives the handler, CPU the handler measured), in ns, of one paced run."""
    import random
    import time

    tmp_path.mkdir()
    port = free_port()
    stats = {}

    def paced(port):
        answers = []
        for _ in range(300):
            answers.append(get(port))
            time.sleep(random.uniform(0.005, 0.015))
        status, body = get(port, "/stats")
        pid, cpu_ns = body.split()
        stats[int(pid)] = int(cpu_ns)
        return answers

    command = [tool("gunicorn"), "--bind", "127.0.0.1:%d" % port, "--workers", "1", "--graceful-timeout", "5",
               "--worker-class", "gthread", "--threads", "4", "apps:short_application"]
    run = run_server(tmp_path, command, port, load=paced)
    run.check(handler_in_every_answering_worker=False)
    assert run.returncode == 0, run.stderr[-3000:]
    (pid, measured), = stats.items()
    return sum(decode(path).by_function("cpu-time").get("short_request", 0) for path in run.profiles[pid]), measured
